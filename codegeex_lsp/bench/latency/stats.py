"""Counting every request: its outcome, the time to it, the waits after pauses, and usefulness.

One `Request` per keystroke, for our server and the peer alike. Its outcome is what an editor
would have done with the answer (`classify`):

- `shown`: a new, non-empty suggestion answered before the next keystroke, so it was displayed;
- `typed-through`: the rest of the suggestion already on screen, after the user typed its start;
- `empty`: answered in time, nothing to show;
- `superseded`: answered after the next keystroke (the editor had moved on: never displayed);
- `cancelled`: answered "request cancelled" (after the next keystroke's `$/cancelRequest`);
- `error` / `timeout`: failed, or no answer within the session's tail.

Latencies are from the keystroke's request to its answer, on this client's clock. "After a pause"
takes the keys a deliberate pause follows (`Keystroke.pause_after`): what a person waits for.
Usefulness judges each `shown` suggestion against the text the typist went on to type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

OUTCOMES = ("shown", "typed-through", "empty", "superseded", "cancelled", "error", "timeout")
DISPLAYED = ("shown", "typed-through")
CANCELLED_CODE = -32800


@dataclass
class Request:
    """One keystroke's completion request and what became of it (times on the client's clock, s)."""

    session: int
    key: int
    sent_s: float
    pause_after: bool = False
    rest: str = ""  # what the typist typed next (typist.Session.rest_after)
    next_key_s: float | None = None  # when the session's next keystroke was sent (None: the last)
    answered_s: float | None = None
    error_code: int | None = None
    text: str = ""
    source: str | None = None  # model | cache | typed-through, where known
    mode: str | None = None  # LINE | BLOCK, where the server reported it
    first_token_ms: float | None = None
    request_id: str = ""
    timed_out: bool = False  # the session's tail passed first; a later answer is not counted

    @property
    def latency_ms(self) -> float | None:
        return None if self.answered_s is None else (self.answered_s - self.sent_s) * 1e3

    @property
    def outcome(self) -> str:
        return classify(self)


def classify(r: Request) -> str:
    if r.timed_out or r.answered_s is None:
        return "timeout"
    if r.error_code == CANCELLED_CODE:
        return "cancelled"
    if r.error_code is not None:
        return "error"
    if r.next_key_s is not None and r.answered_s > r.next_key_s:
        return "superseded"
    if not r.text:
        return "empty"
    return "typed-through" if r.source == "typed-through" else "shown"


def continues(previous: str, typed: str, text: str) -> bool:
    """Is `text` the rest of the suggestion `previous` after the user typed `typed` (its start)?"""
    return bool(previous) and bool(text) and previous.startswith(typed) and previous[len(typed) :] == text


@dataclass(frozen=True)
class Judgement:
    full: bool  # the typist went on to type the whole suggestion
    first_line: bool  # ... or at least its first (non-blank) line
    saved_chars: int  # what accepting it (or its first line) would have spared


def judge(suggestion: str, rest: str) -> Judgement:
    """`suggestion` against `rest`, the text typed next. Trailing whitespace of a suggestion is free."""
    text = suggestion.rstrip()
    if not text.strip():
        return Judgement(False, False, 0)
    start = len(text) - len(text.lstrip())
    end = text.find("\n", start)
    head = text if end < 0 else text[:end]
    if rest.startswith(text):
        return Judgement(True, True, len(text))
    if rest.startswith(head):
        return Judgement(False, True, len(head))
    return Judgement(False, False, 0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values; inf stays inf."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    if math.isinf(ordered[hi]):
        return ordered[hi] if rank > lo or math.isinf(ordered[lo]) else ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def dist(values: Sequence[float]) -> dict[str, Any]:
    """n, p50, p95, p99 (ms), None where no values."""
    return {"n": len(values), **{f"p{q}": _finite(percentile(values, q)) for q in (50, 95, 99)}}


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else round(value, 2)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summarize(requests: Sequence[Request], first_token_ms: Iterable[float]) -> dict[str, Any]:
    """Everything the report shows for one side; `first_token_ms`: one value per started decode."""
    by_outcome: dict[str, list[Request]] = {k: [] for k in OUTCOMES}
    for r in requests:
        by_outcome[r.outcome].append(r)
    shown = by_outcome["shown"]
    displayed = shown + by_outcome["typed-through"]
    pauses = [r for r in requests if r.pause_after]
    waited = [r.latency_ms for r in pauses if r.outcome in DISPLAYED and r.latency_ms is not None]
    judged = [judge(r.text, r.rest) for r in shown]
    full = sum(j.full for j in judged)
    first = sum(j.first_line for j in judged)
    saved = sum(j.saved_chars for j in judged)
    first_token = dist([v for v in first_token_ms if v is not None])
    modes: dict[str, int] = {}
    for r in requests:
        if r.mode:
            modes[r.mode] = modes.get(r.mode, 0) + 1
    return {
        "requests": len(requests),
        "shown": len(shown),
        "outcomes": {k: len(v) for k, v in by_outcome.items()},
        "time_to_outcome_ms": {
            k: dist([r.latency_ms for r in v if r.latency_ms is not None]) for k, v in by_outcome.items()
        },
        "first_token_ms": first_token,
        "final_ms": dist([r.latency_ms for r in shown if r.latency_ms is not None]),
        "final_displayed_ms": dist([r.latency_ms for r in displayed if r.latency_ms is not None]),
        "pauses": len(pauses),
        "pauses_with_suggestion": len(waited),
        "after_pause_ms": dist(waited),
        # A pause that ended without a suggestion counts as an endless wait here.
        "after_pause_all_ms": dist(waited + [math.inf] * (len(pauses) - len(waited))),
        "usefulness": _share(full, len(shown)),
        "usefulness_first_line": _share(first, len(shown)),
        "chars_saved": saved,
        "chars_saved_per_shown": round(saved / len(shown), 2) if shown else None,
        "modes": modes,
        # the headline fields the issue names
        "first_token_p50_ms": first_token["p50"],
        "first_suggestion_after_pause_p50_ms": _finite(percentile(waited, 50)),
        "final_p50_ms": _finite(percentile([r.latency_ms for r in shown if r.latency_ms is not None], 50)),
        "final_p95_ms": _finite(percentile([r.latency_ms for r in shown if r.latency_ms is not None], 95)),
    }
