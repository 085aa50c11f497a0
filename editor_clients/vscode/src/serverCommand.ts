/**
 * Which `codegeex-lsp` executable to start: the configured path, else the first found of the
 * workspace's virtual environments, the active one ($VIRTUAL_ENV) and PATH.
 *
 * Pure: the file system and environment are passed in, so `node --test` covers every branch.
 */

import * as path from "path";

export interface Probe {
  /** Workspace folder paths, in order. */
  folders: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  platform: NodeJS.Platform;
  /** Whether `file` exists and is executable. */
  isExecutable: (file: string) => boolean;
}

export interface ServerCommand {
  command: string;
  args: string[];
  /** Where the executable was found, for the log and the status tooltip. */
  source: string;
}

const VENV_DIRS = [".venv", "venv", "env"];

function binName(platform: NodeJS.Platform): { dir: string; exe: string } {
  return platform === "win32" ? { dir: "Scripts", exe: "codegeex-lsp.exe" } : { dir: "bin", exe: "codegeex-lsp" };
}

/** `${workspaceFolder}` and a leading `~` in a configured path, expanded. */
export function expandPath(configured: string, probe: Probe): string {
  let out = configured;
  if (probe.folders.length > 0) {
    out = out.split("${workspaceFolder}").join(probe.folders[0]);
  }
  const home = probe.env.HOME ?? probe.env.USERPROFILE;
  if (home && (out === "~" || out.startsWith("~/"))) {
    out = home + out.slice(1);
  }
  return out;
}

/** The candidates in the order they are tried, each with its source. */
export function candidates(probe: Probe): { file: string; source: string }[] {
  const { dir, exe } = binName(probe.platform);
  const out: { file: string; source: string }[] = [];
  for (const folder of probe.folders) {
    for (const venv of VENV_DIRS) {
      out.push({ file: path.join(folder, venv, dir, exe), source: `workspace venv ${path.join(folder, venv)}` });
    }
  }
  if (probe.env.VIRTUAL_ENV) {
    out.push({ file: path.join(probe.env.VIRTUAL_ENV, dir, exe), source: "$VIRTUAL_ENV" });
  }
  const sep = probe.platform === "win32" ? ";" : ":";
  for (const entry of (probe.env.PATH ?? "").split(sep)) {
    if (entry) {
      out.push({ file: path.join(entry, exe), source: "PATH" });
    }
  }
  return out;
}

/**
 * The command that starts the server on stdio (`<exe> serve <args…>`), or an error telling the
 * user what to set.
 */
export function resolveServerCommand(
  configuredPath: string,
  extraArgs: readonly string[],
  probe: Probe,
): ServerCommand | { error: string } {
  const args = ["serve", ...extraArgs];
  if (configuredPath) {
    const file = expandPath(configuredPath, probe);
    if (!probe.isExecutable(file)) {
      return { error: `codegeexLsp.server.path is set to ${file}, which is not an executable file` };
    }
    return { command: file, args, source: "codegeexLsp.server.path" };
  }
  const found = candidates(probe).find((c) => probe.isExecutable(c.file));
  if (found) {
    return { command: found.file, args, source: found.source };
  }
  return {
    error:
      "codegeex-lsp was not found in the workspace's .venv, $VIRTUAL_ENV or PATH: install it " +
      "(pip install codegeex-lsp) or set codegeexLsp.server.path",
  };
}
