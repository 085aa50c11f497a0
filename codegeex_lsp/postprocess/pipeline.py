"""The ordered filter pipeline: the order is data, `DEFAULT_PIPELINE`.

Why this order:
1. `cut_chat_runoff` first: fences, chat prose and leaked tokens are not code, and every later rule
   reads the text as lines of code (prose would form blocks, a fence a line at column 0).
2. `remove_line_ends_with_repetition`, `remove_repetitive_blocks`, `remove_repetitive_lines`: loops
   run until the token budget ends, so they sit at the end of the raw text; they are found before
   `limit_scope` cuts into them (at top level the scope rule cuts nothing), blocks before lines.
3. `limit_scope`: one line or one block. It keeps a block's closing line.
4. `cut_suffix_overlap` after the scope is settled: its tail rule looks at the final last line, and
   it drops the closing line `limit_scope` kept when the suffix already has it.
5. `trim_closing_brackets` after it: the exact tail rule keeps more (`;` after `)`), this is the
   fallback for a closer followed by other text.
6. `trim_unparsable_tail` once the text is otherwise final, so it judges what would be inserted.
7. `trim_space`, then `drop_duplicated` on the trimmed text, and `drop_blank` last: any filter
   before it may have emptied the text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from codegeex_lsp.postprocess.cut_chat_runoff import cut_chat_runoff
from codegeex_lsp.postprocess.cut_suffix_overlap import cut_suffix_overlap
from codegeex_lsp.postprocess.drop_blank import drop_blank
from codegeex_lsp.postprocess.drop_duplicated import drop_duplicated
from codegeex_lsp.postprocess.limit_scope import limit_scope
from codegeex_lsp.postprocess.remove_line_ends_with_repetition import remove_line_ends_with_repetition
from codegeex_lsp.postprocess.remove_repetitive_blocks import remove_repetitive_blocks
from codegeex_lsp.postprocess.remove_repetitive_lines import remove_repetitive_lines
from codegeex_lsp.postprocess.trim_closing_brackets import trim_closing_brackets
from codegeex_lsp.postprocess.trim_space import trim_space
from codegeex_lsp.postprocess.trim_unparsable_tail import trim_unparsable_tail
from codegeex_lsp.prompt.healing import heal, split_trailing_whitespace
from codegeex_lsp.prompt.types import FimRequest

log = logging.getLogger(__name__)

Filter = Callable[[str, FimRequest], str | None]
"""A post-processing step: the suggestion `text` at the cursor of the request, cleaned, or None to
discard it. It reads the request's document (prefix, suffix), `language`, `mode` ("LINE": finish
the current line; "BLOCK": may add lines) and `scope` (a BLOCK suggestion may not leave it)."""

_MODES = ("LINE", "BLOCK")

POSTPROCESS_VERSION = 3
"""Bumped when a filter changes what it returns, so benchmark generations made under another
version are not reused. 3: lines inserted above code on the cursor's line keep that code on its
own line (`cut_suffix_overlap` searches that line first and keeps the break, `trim_space` keeps a
final break there). 2 was a first cut of that which also broke spans ending mid-word; no result
of it is kept."""

DEFAULT_PIPELINE: tuple[Filter, ...] = (
    cut_chat_runoff,
    remove_line_ends_with_repetition,
    remove_repetitive_blocks,
    remove_repetitive_lines,
    limit_scope,
    cut_suffix_overlap,
    trim_closing_brackets,
    trim_unparsable_tail,
    trim_space,
    drop_duplicated,
    drop_blank,
)


def run_pipeline(
    text: str,
    request: FimRequest,
    filters: Iterable[Filter] = DEFAULT_PIPELINE,
    request_id: str | None = None,
) -> str | None:
    """Apply the filters in order to `text`; None as soon as one discards the suggestion.

    A filter only returns the suggestion's text: the request (the user's document and its facts)
    is the same for every filter, so post-processing never touches user text. `request_id` only
    labels log records.
    """
    if request.mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, not {request.mode!r}")
    current = text
    for step in filters:
        result = step(current, request)
        name = getattr(step, "__name__", repr(step))
        if result is None:
            log.debug("[%s] %s discarded %r", request_id, name, current)
            return None
        if result != current:
            log.debug("[%s] %s: %r -> %r", request_id, name, current, result)
        current = result
    return current


def finish_candidates(
    raw: Iterable[str], request: FimRequest, request_id: str | None = None
) -> tuple[str, ...]:
    """The suggestions from a generator's raw texts: each healed (the cursor's trailing whitespace
    the prompt left out) and run through the pipeline once, with the request's scope and mode;
    discarded and duplicate ones dropped. The one place generated text becomes a suggestion."""
    _prefix, trailing = split_trailing_whitespace(request.prefix)
    texts: list[str] = []
    for text in raw:
        kept = run_pipeline(heal(text, trailing), request, request_id=request_id)
        if kept is not None and kept not in texts:
            texts.append(kept)
    return tuple(texts)
