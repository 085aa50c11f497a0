import assert from "node:assert/strict";
import { test } from "node:test";

import { ACCEPTED, DISMISSED, type Shown, SuggestionTracker, typedThrough } from "../src/tracker";

function tracked() {
  const sent: string[] = [];
  const tracker = new SuggestionTracker((method, params) => sent.push(`${method} ${params.uri}`));
  return { tracker, sent };
}

const SHOWN: Shown = { uri: "file:///a.py", line: 3, linePrefix: "    ret", text: "urn a + b\n\nprint(1)" };

test("typing the suggestion's own characters is typing through it", () => {
  assert.equal(typedThrough(SHOWN, 3, "    retu"), true);
  assert.equal(typedThrough(SHOWN, 3, "    return a + b"), true);
  assert.equal(typedThrough(SHOWN, 3, "    retx"), false);
  assert.equal(typedThrough(SHOWN, 3, "    ret"), false); // same spot again: a new request, not typing
  assert.equal(typedThrough(SHOWN, 3, "    re"), false);
  assert.equal(typedThrough(SHOWN, 4, ""), true); // a line of it was accepted
  assert.equal(typedThrough(SHOWN, 5, "print"), true);
  assert.equal(typedThrough(SHOWN, 5, "x"), false);
  assert.equal(typedThrough(SHOWN, 9, ""), false);
});

test("a whole acceptance is reported once", () => {
  const { tracker, sent } = tracked();
  tracker.shown(SHOWN);
  tracker.accepted(SHOWN.uri);
  tracker.requested(SHOWN.uri, 5, "print(1)");
  assert.deepEqual(sent, [`${ACCEPTED} ${SHOWN.uri}`]);
});

test("typing something else dismisses; typing through does not", () => {
  const { tracker, sent } = tracked();
  tracker.shown(SHOWN);
  tracker.requested(SHOWN.uri, 3, "    retu");
  assert.deepEqual(sent, []);
  tracker.requested(SHOWN.uri, 3, "    retux");
  assert.deepEqual(sent, [`${DISMISSED} ${SHOWN.uri}`]);
  assert.equal(tracker.has(SHOWN.uri), false);
});

test("partial acceptance counts once and is never followed by a dismissal", () => {
  const { tracker, sent } = tracked();
  tracker.shown(SHOWN);
  tracker.partlyAccepted(SHOWN.uri);
  tracker.partlyAccepted(SHOWN.uri);
  tracker.dismissed(SHOWN.uri);
  assert.deepEqual(sent, [`${ACCEPTED} ${SHOWN.uri}`]);
});

test("escape dismisses only what is pending, per document", () => {
  const { tracker, sent } = tracked();
  tracker.dismissed(SHOWN.uri);
  tracker.shown(SHOWN);
  tracker.dismissed("file:///other.py");
  tracker.dismissed(SHOWN.uri);
  tracker.dismissed(SHOWN.uri);
  assert.deepEqual(sent, [`${DISMISSED} ${SHOWN.uri}`]);
});

test("reset forgets without reporting", () => {
  const { tracker, sent } = tracked();
  tracker.shown(SHOWN);
  tracker.reset();
  tracker.requested(SHOWN.uri, 0, "x");
  assert.deepEqual(sent, []);
});
