/**
 * What became of the suggestions shown: `codegeex/accepted` when one (or a word or line of it) is
 * taken, `codegeex/dismissed` when the user moved on without it (Escape, typed something else,
 * switched editors). Typing the suggestion's own next characters is neither.
 *
 * Pure: the extension reports events and passes a `send` callback.
 */

export const ACCEPTED = "codegeex/accepted";
export const DISMISSED = "codegeex/dismissed";

export type Send = (method: typeof ACCEPTED | typeof DISMISSED, params: { uri: string }) => void;

export interface Shown {
  uri: string;
  line: number;
  /** The line's text before the cursor when the suggestion was made. */
  linePrefix: string;
  text: string;
}

/**
 * Whether the cursor's line prefix `now` is `shown`'s prefix plus a start of its text (the user
 * typed or partially accepted it) rather than something else.
 */
export function typedThrough(shown: Shown, line: number, linePrefix: string): boolean {
  if (line === shown.line) {
    if (!linePrefix.startsWith(shown.linePrefix)) {
      return false;
    }
    const typed = linePrefix.slice(shown.linePrefix.length);
    return typed.length > 0 && shown.text.startsWith(typed);
  }
  // On a later line: the suggestion's lines up to the cursor were taken, and the cursor's line
  // starts like the suggestion's corresponding line.
  const lines = shown.text.split("\n");
  const index = line - shown.line;
  return index > 0 && index < lines.length && lines[index].startsWith(linePrefix);
}

/** Each suggestion is reported once: accepted (wholly or partly) or dismissed. */
export class SuggestionTracker {
  private pending = new Map<string, Shown & { accepted?: boolean }>();

  constructor(private readonly send: Send) {}

  /** A suggestion was handed to the editor for `shown.uri` (replaces any earlier one there). */
  shown(shown: Shown): void {
    this.pending.set(shown.uri, { ...shown });
  }

  /** A new request for `uri` at (`line`, `linePrefix`): settles the previous suggestion first. */
  requested(uri: string, line: number, linePrefix: string): void {
    const previous = this.pending.get(uri);
    if (previous === undefined) {
      return;
    }
    if (typedThrough(previous, line, linePrefix)) {
      return; // still the same suggestion, partly typed or accepted
    }
    this.pending.delete(uri);
    if (!previous.accepted) {
      this.send(DISMISSED, { uri });
    }
  }

  /** The whole suggestion was accepted (its item's command ran). */
  accepted(uri: string): void {
    const previous = this.pending.get(uri);
    this.pending.delete(uri);
    if (!previous?.accepted) {
      this.send(ACCEPTED, { uri });
    }
  }

  /** A word or line of it was accepted; the rest may still be shown. */
  partlyAccepted(uri: string): void {
    const previous = this.pending.get(uri);
    if (previous !== undefined && !previous.accepted) {
      previous.accepted = true;
      this.send(ACCEPTED, { uri });
    }
  }

  /** Escape, a closed document or another active editor: nothing pending there is taken. */
  dismissed(uri: string): void {
    const previous = this.pending.get(uri);
    if (this.pending.delete(uri) && !previous?.accepted) {
      this.send(DISMISSED, { uri });
    }
  }

  /** Forget everything without telling anyone (the server restarted). */
  reset(): void {
    this.pending.clear();
  }

  has(uri: string): boolean {
    return this.pending.has(uri);
  }
}
