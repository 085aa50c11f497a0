import assert from "node:assert/strict";
import { test } from "node:test";

import { INITIAL, reduce, type StatusEvent, type StatusState, view } from "../src/statusView";

function run(events: StatusEvent[], from: StatusState = INITIAL): StatusState {
  return events.reduce(reduce, from);
}

test("starting, loading with progress, ready", () => {
  assert.match(view(INITIAL).text, /loading~spin/);
  const loading = run([{ kind: "progress", message: "loading weights", percentage: 40 }]);
  assert.equal(loading.phase, "loading");
  assert.equal(view(loading).text, "$(loading~spin) CodeGeeX 40%");
  assert.match(view(loading).tooltip, /loading weights/);
  const ready = run([{ kind: "progress", done: true, message: "m ready" }, { kind: "status", state: "ready", model: "m", format: "f" }], loading);
  assert.equal(ready.phase, "ready");
  assert.equal(view(ready).text, "$(check) CodeGeeX");
  assert.match(view(ready).tooltip, /ready with m \(f\)/);
});

test("a background build reports while the model serves: still ready, with its percentage", () => {
  const ready = run([{ kind: "status", state: "ready", model: "m", format: "f" }]);
  const building = run([{ kind: "progress", message: "int4 build: gptq layers.3.w_down", percentage: 42 }], ready);
  assert.equal(building.phase, "ready");
  assert.equal(view(building).text, "$(check) CodeGeeX 42%");
  assert.match(view(building).tooltip, /ready with m \(f\); building in the background \(int4 build/);
  const done = run([{ kind: "progress", done: true, message: "switched to int4 (r)" }], building);
  assert.equal(done.phase, "ready");
  assert.equal(view(done).text, "$(check) CodeGeeX");
});

test("an error shows with the error background and the message", () => {
  const state = run([{ kind: "status", state: "error", error: "cannot load model 'x'" }]);
  const shown = view(state);
  assert.equal(shown.text, "$(error) CodeGeeX");
  assert.equal(shown.background, "statusBarItem.errorBackground");
  assert.match(shown.tooltip, /cannot load model 'x'/);
  // A later successful reload clears it.
  assert.equal(run([{ kind: "status", state: "ready", model: "y" }], state).error, undefined);
});

test("disabled wins over every phase; a disabled language shows when ready", () => {
  const off = run([{ kind: "status", state: "ready", model: "m" }, { kind: "enabled", enabled: false }]);
  assert.equal(view(off).text, "$(circle-slash) CodeGeeX");
  assert.match(view(off).tooltip, /Click to enable/);
  const lang = run([{ kind: "status", state: "ready", model: "m" }, { kind: "language", enabled: false }]);
  assert.equal(view(lang).text, "$(circle-slash) CodeGeeX");
  assert.match(view(lang).tooltip, /off for this language/);
});

test("a stopped server asks for a restart", () => {
  const shown = view(run([{ kind: "stopped" }]));
  assert.match(shown.tooltip, /Restart Server/);
  assert.equal(shown.background, "statusBarItem.warningBackground");
});

test("the accessibility label names the state without icons", () => {
  assert.equal(view(INITIAL).label, "CodeGeeX starting");
  assert.equal(view(run([{ kind: "status", state: "ready", model: "m" }])).label, "CodeGeeX ready");
  assert.equal(view(run([{ kind: "enabled", enabled: false }])).label, "CodeGeeX disabled");
});
