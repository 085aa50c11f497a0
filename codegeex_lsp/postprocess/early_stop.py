"""When to stop generating: the one stop spec the local decode loop and the remote backend apply.

Both stream text and must end it the same way, so the rules live here (no torch), once:
- `stop_spec`: the format's stop strings plus the run-off ones, single-line in LINE mode, and
- `cut_at_stop`: the earliest stop string, or in LINE mode the first newline after non-blank text;
- `scope_stop_check`: stop once post-processing would cut into the lines already generated
  (with the request's scope, as the final pipeline sees it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codegeex_lsp.postprocess.cut_chat_runoff import cut_chat_runoff
from codegeex_lsp.postprocess.cut_suffix_overlap import cut_suffix_overlap
from codegeex_lsp.postprocess.limit_scope import limit_scope
from codegeex_lsp.postprocess.pipeline import run_pipeline
from codegeex_lsp.postprocess.remove_repetitive_blocks import remove_repetitive_blocks
from codegeex_lsp.postprocess.remove_repetitive_lines import remove_repetitive_lines
from codegeex_lsp.prompt.healing import heal, split_trailing_whitespace
from codegeex_lsp.prompt.types import FimRequest

# Instruct models run on past the middle into markdown and chat; a fence never belongs in a FIM
# middle, so stop generating there instead of paying for tokens post-processing would cut anyway.
RUNOFF_STOP_STRINGS = ("```",)

# Filters whose cuts more text cannot undo, in pipeline order.
STOP_FILTERS = (
    cut_chat_runoff,
    remove_repetitive_blocks,
    remove_repetitive_lines,
    limit_scope,
    cut_suffix_overlap,
)


@dataclass(frozen=True)
class StopSpec:
    """Where a generator stops: `strings` (run-off ones first: an API may take only a few),
    `single_line` (LINE mode) and `check`, true once the text so far would be cut anyway."""

    strings: tuple[str, ...]
    single_line: bool
    check: Callable[[str], bool] | None = None

    def cut(self, text: str) -> int | None:
        return cut_at_stop(text, self.strings, self.single_line)


def stop_spec(request: FimRequest, format_stops: Sequence[str] = ()) -> StopSpec:
    """The stop spec for `request` whose prompt format stops at `format_stops`."""
    strings = tuple(dict.fromkeys((*RUNOFF_STOP_STRINGS, *format_stops)))
    return StopSpec(strings, request.mode == "LINE", scope_stop_check(request))


def cut_at_stop(text: str, stops: Sequence[str], single_line: bool) -> int | None:
    """Where `text` ends: the earliest stop string, or (single_line) the first newline after text."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    if single_line:
        body = len(text) - len(text.lstrip())
        newline = text.find("\n", body)
        if newline >= 0:
            hits.append(newline)
    return min(hits) if hits else None


def scope_stop_check(request: FimRequest) -> Callable[[str], bool]:
    """A check for the raw text so far: True once STOP_FILTERS cut inside its finished lines.

    Those filters only cut at or before a point more text cannot move (a closed scope, a repeat of
    the suffix, a fence), so every further token would be thrown away: an Instruct model otherwise
    runs on for max_tokens, repeating the rest of the file. The text is whitespace-healed first,
    as the final pipeline sees it.
    """
    _prefix, trailing = split_trailing_whitespace(request.prefix)

    def check(text: str) -> bool:
        text = heal(text, trailing)
        complete = text[: text.rfind("\n")].rstrip()
        if not complete.strip():
            return False
        kept = run_pipeline(text, request, STOP_FILTERS)
        return kept is None or len(kept.rstrip()) < len(complete)

    return check
