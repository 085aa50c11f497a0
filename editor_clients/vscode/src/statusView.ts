/**
 * The status bar item's look for each state of the server and the model.
 *
 * Pure: the extension feeds it events (`reduce`) and renders what `view` returns.
 */

export type Phase = "starting" | "loading" | "ready" | "error" | "stopped";

export interface StatusState {
  phase: Phase;
  enabled: boolean;
  /** Whether the active editor's language gets suggestions. */
  languageEnabled: boolean;
  model?: string;
  format?: string;
  /** Latest `$/progress` message of the model load (or of a background build while ready). */
  progress?: string;
  percentage?: number;
  error?: string;
}

export type StatusEvent =
  | { kind: "starting" }
  | { kind: "progress"; message?: string; percentage?: number; done?: boolean }
  | { kind: "status"; state: string; model?: string | null; format?: string | null; error?: string | null }
  | { kind: "failed"; error: string }
  | { kind: "stopped" }
  | { kind: "enabled"; enabled: boolean }
  | { kind: "language"; enabled: boolean };

export const INITIAL: StatusState = { phase: "starting", enabled: true, languageEnabled: true };

/** The state after `event`. */
export function reduce(state: StatusState, event: StatusEvent): StatusState {
  switch (event.kind) {
    case "starting":
      return { ...state, phase: "starting", progress: undefined, percentage: undefined, error: undefined };
    case "progress":
      if (event.done) {
        return { ...state, progress: event.message, percentage: undefined };
      }
      return {
        ...state,
        // A background task (the one-time int4 build) reports while the model already serves.
        phase: state.phase === "error" || state.phase === "ready" ? state.phase : "loading",
        progress: event.message ?? state.progress,
        percentage: event.percentage,
      };
    case "status": {
      const phase: Phase =
        event.state === "ready" ? "ready" : event.state === "error" ? "error" : event.state === "loading" ? "loading" : state.phase;
      return {
        ...state,
        phase,
        model: event.model ?? state.model,
        format: event.format ?? undefined,
        error: event.state === "error" ? (event.error ?? "unknown error") : undefined,
      };
    }
    case "failed":
      return { ...state, phase: "error", error: event.error };
    case "stopped":
      return { ...state, phase: "stopped" };
    case "enabled":
      return { ...state, enabled: event.enabled };
    case "language":
      return { ...state, languageEnabled: event.enabled };
  }
}

export interface StatusView {
  text: string;
  tooltip: string;
  /** For screen readers: "CodeGeeX <state>" without icons. */
  label: string;
  /** A theme color id for the background, for states that need attention. */
  background?: "statusBarItem.errorBackground" | "statusBarItem.warningBackground";
}

/** What the status bar item shows; a click always toggles `codegeexLsp.enable`. */
export function view(state: StatusState): StatusView {
  const shown = look(state);
  const label = !state.enabled ? "disabled" : state.phase === "ready" && !state.languageEnabled ? "off for this language" : state.phase;
  return { ...shown, label: `CodeGeeX ${label}` };
}

function look(state: StatusState): Omit<StatusView, "label"> {
  const toggle = state.enabled ? "Click to disable suggestions." : "Click to enable suggestions.";
  if (!state.enabled) {
    return { text: "$(circle-slash) CodeGeeX", tooltip: `CodeGeeX: disabled. ${toggle}` };
  }
  switch (state.phase) {
    case "starting":
      return { text: "$(loading~spin) CodeGeeX", tooltip: `CodeGeeX: starting the server… ${toggle}` };
    case "loading": {
      const pct = state.percentage !== undefined ? ` ${Math.round(state.percentage)}%` : "";
      const what = state.progress ? `: ${state.progress}` : "";
      return {
        text: `$(loading~spin) CodeGeeX${pct}`,
        tooltip: `CodeGeeX: loading ${state.model ?? "the model"}${what}. ${toggle}`,
      };
    }
    case "error":
      return {
        text: "$(error) CodeGeeX",
        tooltip: `CodeGeeX: ${state.error ?? "error"}. Run "CodeGeeX: Show Server Log" for details. ${toggle}`,
        background: "statusBarItem.errorBackground",
      };
    case "stopped":
      return {
        text: "$(debug-disconnect) CodeGeeX",
        tooltip: `CodeGeeX: the server is not running. Run "CodeGeeX: Restart Server". ${toggle}`,
        background: "statusBarItem.warningBackground",
      };
    case "ready": {
      const model = `${state.model ?? "model"}${state.format ? ` (${state.format})` : ""}`;
      if (!state.languageEnabled) {
        return {
          text: "$(circle-slash) CodeGeeX",
          tooltip: `CodeGeeX: ready with ${model}, off for this language (codegeexLsp.languages). ${toggle}`,
        };
      }
      if (state.percentage !== undefined) {
        const what = state.progress ? ` (${state.progress})` : "";
        return {
          text: `$(check) CodeGeeX ${Math.round(state.percentage)}%`,
          tooltip: `CodeGeeX: ready with ${model}; building in the background${what}. ${toggle}`,
        };
      }
      return { text: "$(check) CodeGeeX", tooltip: `CodeGeeX: ready with ${model}. ${toggle}` };
    }
  }
}
