"""When to stop generating: text rules shared by the local decode loop and the remote backend.

Both stream text and must end it the same way, so the rules live here (no torch), once:
- `cut_at_stop`: the earliest stop string, or in LINE mode the first newline after non-blank text;
- `scope_stop_check`: stop once post-processing would cut into the lines already generated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from codegeex_lsp.postprocess.candidate import Candidate
from codegeex_lsp.postprocess.cut_chat_runoff import cut_chat_runoff
from codegeex_lsp.postprocess.cut_suffix_overlap import cut_suffix_overlap
from codegeex_lsp.postprocess.limit_scope import limit_scope
from codegeex_lsp.postprocess.pipeline import run_pipeline
from codegeex_lsp.postprocess.remove_repetitive_blocks import remove_repetitive_blocks
from codegeex_lsp.postprocess.remove_repetitive_lines import remove_repetitive_lines
from codegeex_lsp.prompt.healing import heal, split_trailing_whitespace
from codegeex_lsp.prompt.types import FimRequest

# Filters whose cuts more text cannot undo, in pipeline order.
STOP_FILTERS = (
    cut_chat_runoff,
    remove_repetitive_blocks,
    remove_repetitive_lines,
    limit_scope,
    cut_suffix_overlap,
)


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
    base = Candidate(request.prefix, request.suffix, request.language, request.mode, text="")
    _prefix, trailing = split_trailing_whitespace(request.prefix)

    def check(text: str) -> bool:
        text = heal(text, trailing)
        complete = text[: text.rfind("\n")].rstrip()
        if not complete.strip():
            return False
        kept = run_pipeline(base.with_text(text), STOP_FILTERS)
        return kept is None or len(kept.text.rstrip()) < len(complete)

    return check
