import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULTS, languageEnabled, planChange, readSettings, toServerOptions } from "../src/settings";

function read(values: Record<string, unknown>) {
  return readSettings((key) => values[key]);
}

test("missing settings are the defaults, without warnings", () => {
  const { settings, warnings } = read({});
  assert.deepEqual(settings, DEFAULTS);
  assert.deepEqual(warnings, []);
});

test("valid settings are taken as given", () => {
  const { settings, warnings } = read({
    enable: false,
    trigger: "manual",
    model: " ~/models/x.gguf ",
    format: "codegeex4",
    maxTokens: 64,
    "debounce.minMs": 0,
    "debounce.maxMs": 0,
    "debounce.initialMs": 0,
    "context.prefixTokens": 2048,
    "context.carryLine": false,
    "server.path": "/opt/bin/codegeex-lsp",
    "server.args": ["--threads", "1"],
    languages: { "*": false, python: true },
  });
  assert.deepEqual(warnings, []);
  assert.equal(settings.enable, false);
  assert.equal(settings.trigger, "manual");
  assert.equal(settings.model, "~/models/x.gguf");
  assert.equal(settings.maxTokens, 64);
  assert.deepEqual(settings.debounce, { minMs: 0, maxMs: 0, initialMs: 0 });
  assert.equal(settings.context.prefixTokens, 2048);
  assert.equal(settings.context.carryLine, false);
  assert.deepEqual(settings.server, { path: "/opt/bin/codegeex-lsp", args: ["--threads", "1"] });
});

test("invalid values fall back to the default with one warning each", () => {
  const { settings, warnings } = read({
    enable: "yes",
    trigger: "sometimes",
    maxTokens: 0,
    "debounce.minMs": -1,
    "context.suffixTokens": 1.5,
    "server.args": "--threads 1",
    languages: ["python"],
  });
  assert.equal(settings.enable, true);
  assert.equal(settings.trigger, "automatic");
  assert.equal(settings.maxTokens, null);
  assert.equal(settings.debounce.minMs, DEFAULTS.debounce.minMs);
  assert.equal(settings.context.suffixTokens, DEFAULTS.context.suffixTokens);
  assert.deepEqual(settings.server.args, []);
  assert.deepEqual(settings.languages, DEFAULTS.languages);
  assert.equal(warnings.length, 7);
  assert.match(warnings[0], /^codegeexLsp\.languages: expected/);
});

test("a debounce with min above max falls back as a whole", () => {
  const { settings, warnings } = read({ "debounce.minMs": 500, "debounce.maxMs": 100 });
  assert.deepEqual(settings.debounce, DEFAULTS.debounce);
  assert.equal(warnings.length, 1);
});

test("languages: own entry, else the wildcard; the global switch wins", () => {
  const { settings } = read({ languages: { "*": false, python: true, go: false } });
  assert.equal(languageEnabled(settings, "python"), true);
  assert.equal(languageEnabled(settings, "go"), false);
  assert.equal(languageEnabled(settings, "rust"), false);
  assert.equal(languageEnabled(DEFAULTS, "rust"), true);
  assert.equal(languageEnabled(DEFAULTS, "markdown"), false);
  assert.equal(languageEnabled({ ...DEFAULTS, enable: false }, "rust"), false);
});

test("server options use the server's wire names and leave empty model/format out", () => {
  assert.deepEqual(toServerOptions(DEFAULTS), {
    model: { quant: "int4" },
    completion: { maxTokens: null },
    debounce: { minMs: 25, maxMs: 300, initialMs: 75 },
    languages: { enabled: ["*"], disabled: ["markdown", "plaintext", "scminput"] },
    context: { prefixTokens: 1024, suffixTokens: 256, referenceTokens: 512, carryLine: true },
  });
  const only = toServerOptions({ ...DEFAULTS, model: "m", format: "glm-4.5", languages: { "*": false, go: true } });
  assert.deepEqual(only.model, { quant: "int4", name: "m", format: "glm-4.5" });
  assert.deepEqual(toServerOptions({ ...DEFAULTS, quant: "none" }).model, { quant: "none" });
  assert.deepEqual(only.languages, { enabled: ["go"], disabled: [] });
});

test("a change restarts, notifies or does nothing", () => {
  const d = DEFAULTS;
  assert.equal(planChange(d, { ...d, server: { path: "/x", args: [] } }), "restart");
  assert.equal(planChange(d, { ...d, server: { path: "", args: ["--threads", "2"] } }), "restart");
  assert.equal(planChange({ ...d, model: "a" }, d), "restart"); // cleared: only a new process forgets it
  assert.equal(planChange(d, { ...d, model: "a" }), "notify");
  assert.equal(planChange(d, { ...d, maxTokens: 12 }), "notify");
  assert.equal(planChange(d, { ...d, quant: "none" }), "notify");
  assert.equal(planChange(d, { ...d, enable: false }), "none");
  assert.equal(planChange(d, { ...d, trigger: "manual" }), "none");
});
