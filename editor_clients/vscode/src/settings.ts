/**
 * The extension's settings (`codegeexLsp.*`): reading them with defaults and validation, and
 * turning them into the server's wire options (codegeex_lsp/server/options.py).
 *
 * Pure: no `vscode` import, so `node --test` covers it.
 */

export const SECTION = "codegeexLsp";

export type Trigger = "automatic" | "manual";
export type Quant = "int4" | "none";

export interface ClientSettings {
  /** Global switch; the status bar item toggles it. */
  enable: boolean;
  /** languageId -> enabled; "*" is the default for languages not listed. */
  languages: Record<string, boolean>;
  trigger: Trigger;
  /** Empty: the server's default (or the one in `server.args`). */
  model: string;
  /** Empty: detected from the model's tokenizer. */
  format: string;
  /** int4 (default, what the project ships and measures) or none (float weights, for comparison). */
  quant: Quant;
  maxTokens: number | null;
  debounce: { minMs: number; maxMs: number; initialMs: number };
  context: { prefixTokens: number; suffixTokens: number; referenceTokens: number; carryLine: boolean };
  server: { path: string; args: string[] };
}

export const DEFAULTS: ClientSettings = {
  enable: true,
  languages: { "*": true, markdown: false, plaintext: false, scminput: false },
  trigger: "automatic",
  model: "",
  format: "",
  quant: "int4",
  maxTokens: null,
  debounce: { minMs: 25, maxMs: 300, initialMs: 75 },
  context: { prefixTokens: 1024, suffixTokens: 256, referenceTokens: 512, carryLine: true },
  server: { path: "", args: [] },
};

/** Reads one setting by its key below `codegeexLsp.` (e.g. "debounce.minMs"). */
export type Getter = (key: string) => unknown;

function int(value: unknown, lo: number, hi: number): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value >= lo && value <= hi ? value : undefined;
}

/**
 * The settings with defaults for missing values; an invalid value falls back to its default and
 * adds a warning (the extension shows them once), never an exception.
 */
export function readSettings(get: Getter): { settings: ClientSettings; warnings: string[] } {
  const warnings: string[] = [];
  function pick<T>(key: string, fallback: T, check: (v: unknown) => T | undefined, expected: string): T {
    const raw = get(key);
    if (raw === undefined || raw === null) {
      return fallback;
    }
    const value = check(raw);
    if (value === undefined) {
      warnings.push(`${SECTION}.${key}: expected ${expected}, got ${JSON.stringify(raw)} (using the default)`);
      return fallback;
    }
    return value;
  }
  const bool = (v: unknown) => (typeof v === "boolean" ? v : undefined);
  const str = (v: unknown) => (typeof v === "string" ? v.trim() : undefined);
  const ms = (v: unknown) => int(v, 0, 5000);
  const tokens = (v: unknown) => int(v, 0, 32768);
  const d = DEFAULTS;

  const languages = pick(
    "languages",
    d.languages,
    (v) =>
      typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((b) => typeof b === "boolean")
        ? (v as Record<string, boolean>)
        : undefined,
    'an object of languageId: true/false (e.g. {"*": true, "markdown": false})',
  );
  const maxTokensRaw = get("maxTokens");
  let maxTokens: number | null = null;
  if (maxTokensRaw !== undefined && maxTokensRaw !== null) {
    const checked = int(maxTokensRaw, 1, 4096);
    if (checked === undefined) {
      warnings.push(`${SECTION}.maxTokens: expected null or an integer in [1, 4096], got ${JSON.stringify(maxTokensRaw)}`);
    } else {
      maxTokens = checked;
    }
  }
  const debounce = {
    minMs: pick("debounce.minMs", d.debounce.minMs, ms, "an integer in [0, 5000]"),
    maxMs: pick("debounce.maxMs", d.debounce.maxMs, ms, "an integer in [0, 5000]"),
    initialMs: pick("debounce.initialMs", d.debounce.initialMs, ms, "an integer in [0, 5000]"),
  };
  if (debounce.minMs > debounce.maxMs) {
    warnings.push(`${SECTION}.debounce: minMs ${debounce.minMs} is above maxMs ${debounce.maxMs} (using the defaults)`);
    Object.assign(debounce, d.debounce);
  }
  const settings: ClientSettings = {
    enable: pick("enable", d.enable, bool, "true or false"),
    languages,
    trigger: pick(
      "trigger",
      d.trigger,
      (v) => (v === "automatic" || v === "manual" ? v : undefined),
      '"automatic" or "manual"',
    ),
    model: pick("model", d.model, str, "a string"),
    format: pick("format", d.format, str, "a string"),
    quant: pick("quant", d.quant, (v) => (v === "int4" || v === "none" ? v : undefined), '"int4" or "none"'),
    maxTokens,
    debounce,
    context: {
      prefixTokens: pick("context.prefixTokens", d.context.prefixTokens, (v) => int(v, 16, 32768), "an integer in [16, 32768]"),
      suffixTokens: pick("context.suffixTokens", d.context.suffixTokens, tokens, "an integer in [0, 32768]"),
      referenceTokens: pick("context.referenceTokens", d.context.referenceTokens, tokens, "an integer in [0, 32768]"),
      carryLine: pick("context.carryLine", d.context.carryLine, bool, "true or false"),
    },
    server: {
      path: pick("server.path", d.server.path, str, "a string"),
      args: pick(
        "server.args",
        d.server.args,
        (v) => (Array.isArray(v) && v.every((a) => typeof a === "string") ? (v as string[]) : undefined),
        "a list of strings",
      ),
    },
  };
  return { settings, warnings };
}

/** Whether documents of `languageId` get suggestions (the language's entry, else "*"). */
export function languageEnabled(settings: ClientSettings, languageId: string): boolean {
  if (!settings.enable) {
    return false;
  }
  const own = settings.languages[languageId];
  if (typeof own === "boolean") {
    return own;
  }
  return settings.languages["*"] ?? true;
}

/**
 * The server's options in wire form (camelCase tree of options.py). Empty model/format are left
 * out so the server keeps its command line's values; `quant` is always sent (it wins over a
 * `--quant` in `server.args`).
 */
export function toServerOptions(settings: ClientSettings): Record<string, unknown> {
  const entries = Object.entries(settings.languages);
  const wildcard = settings.languages["*"] ?? true;
  const enabled = wildcard ? ["*"] : entries.filter(([id, on]) => on && id !== "*").map(([id]) => id);
  const disabled = entries.filter(([id, on]) => !on && id !== "*").map(([id]) => id);
  const model: Record<string, unknown> = { quant: settings.quant };
  if (settings.model) {
    model.name = settings.model;
  }
  if (settings.format) {
    model.format = settings.format;
  }
  const options: Record<string, unknown> = {
    completion: { maxTokens: settings.maxTokens },
    debounce: { ...settings.debounce },
    languages: { enabled, disabled },
    context: { ...settings.context },
  };
  options.model = model;
  return options;
}

/**
 * What a settings change needs: a new server process (its command changed, or a model/format
 * setting was cleared, which a running server cannot tell from "unchanged"), a
 * `workspace/didChangeConfiguration`, or nothing the server sees.
 */
export function planChange(before: ClientSettings, after: ClientSettings): "restart" | "notify" | "none" {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(before.server, after.server)) {
    return "restart";
  }
  if ((before.model && !after.model) || (before.format && !after.format)) {
    return "restart";
  }
  return same(toServerOptions(before), toServerOptions(after)) ? "none" : "notify";
}
