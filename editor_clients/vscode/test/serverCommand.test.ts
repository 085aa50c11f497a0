import assert from "node:assert/strict";
import { test } from "node:test";

import { candidates, type Probe, resolveServerCommand } from "../src/serverCommand";

function probe(executables: string[], env: Record<string, string> = {}, folders = ["/ws"]): Probe {
  return { folders, env, platform: "linux", isExecutable: (f) => executables.includes(f) };
}

test("the configured path wins and gets `serve` plus the extra arguments", () => {
  const found = resolveServerCommand("${workspaceFolder}/tools/cg", ["--threads", "1"], probe(["/ws/tools/cg"]));
  assert.deepEqual(found, { command: "/ws/tools/cg", args: ["serve", "--threads", "1"], source: "codegeexLsp.server.path" });
});

test("a configured path that is not executable is an error, not a fallback", () => {
  const found = resolveServerCommand("~/bin/cg", [], probe(["/usr/bin/codegeex-lsp"], { HOME: "/home/u", PATH: "/usr/bin" }));
  assert.ok("error" in found);
  assert.match(found.error, /\/home\/u\/bin\/cg/);
});

test("workspace venv before $VIRTUAL_ENV before PATH", () => {
  const env = { VIRTUAL_ENV: "/venvs/a", PATH: "/usr/local/bin:/usr/bin" };
  const all = ["/ws/.venv/bin/codegeex-lsp", "/venvs/a/bin/codegeex-lsp", "/usr/bin/codegeex-lsp"];
  assert.equal((resolveServerCommand("", [], probe(all, env)) as { command: string }).command, all[0]);
  assert.equal((resolveServerCommand("", [], probe(all.slice(1), env)) as { command: string }).command, all[1]);
  const last = resolveServerCommand("", [], probe(all.slice(2), env));
  assert.deepEqual(last, { command: all[2], args: ["serve"], source: "PATH" });
});

test("nothing found is an error that names the setting", () => {
  const found = resolveServerCommand("", [], probe([], { PATH: "/usr/bin" }));
  assert.ok("error" in found);
  assert.match(found.error, /codegeexLsp\.server\.path/);
});

test("windows layout uses Scripts\\codegeex-lsp.exe", () => {
  const p: Probe = { ...probe([]), platform: "win32", env: { PATH: "" } };
  assert.ok(candidates(p)[0].file.endsWith("codegeex-lsp.exe"));
  assert.ok(candidates(p)[0].file.includes("Scripts"));
});
