"""Cut the part of the suggestion that repeats the text already after the cursor.

FIM models often finish the middle and then write out the suffix again (the rest of the function,
the closing brace, the `)` the editor auto-inserted). Two rules:

1. Lines: the first `MATCH_LINES` non-blank lines of the suffix below the cursor's line are looked
   for in the suggestion, compared as normalized lines (indentation width + whitespace-squashed
   content, so a `}` closing an inner block does not match the `}` of the outer one). At the first
   suggestion line where they reappear in order (as many as the suggestion still has, up to
   `MATCH_LINES`), the suggestion is cut before that line. When all the matched lines are bare
   closers (`}`, `)`, closing quotes: no letter or digit), the suggestion must also have closed, by the end
   of that line, something opened before the cursor (a bracket, the docstring the cursor is in):
   a method's own `}` at column 0 is no copy of the class's `}` below it.
   When only indentation precedes the cursor and code follows it, the search first starts at the
   cursor's own line: a suggestion that repeats it inserts its lines above that code, so the cut
   keeps the line break before the repeat. (A span that ends mid-word, `ba█lance`, repeats no
   whole line there and falls to the search below.)
2. Current line: when the suggestion's last line ends with the start of the rest of the cursor's line
   (`x = f(█)` and the suggestion `a)`), that tail is dropped. A tail shorter than the whole rest of
   the line must be closers or punctuation only (`)`, `]`, `;`, quotes ...), and the tail is dropped
   only when the cursor's line is then no less balanced (brackets, quotes) than with it: `foo()` in
   `print(█)` keeps its own `)`.
"""

from __future__ import annotations

import re

from codegeex_lsp.context.scope import cursor_before_code
from codegeex_lsp.postprocess._lexer import imbalance, lines_owing_closers, state_after
from codegeex_lsp.postprocess._text import (
    before_cursor_line,
    has_word,
    is_blank,
    line_after_cursor,
    line_before_cursor,
    nonblank_lines,
    normalize_line,
)
from codegeex_lsp.prompt.types import FimRequest

MATCH_LINES = 3
"""How many suffix lines must reappear (fewer when the suggestion ends first)."""

_CLOSERS_ONLY = re.compile(r"[\s)\]}>\"'`;,:]+")


def cut_suffix_overlap(text: str, request: FimRequest) -> str:
    return _cut_repeated_line_tail(_cut_repeated_lines(text, request), request)


def _cut_repeated_lines(text: str, request: FimRequest) -> str:
    line_prefix = line_before_cursor(request.prefix)
    rest = line_after_cursor(request.suffix)
    lines = text.split("\n")
    if cursor_before_code(request.prefix, request.suffix):
        # Code after the cursor on its line: if the suggestion repeats that line (and the ones under
        # it), its lines go above it, and it ends where the repeat began, with the line break.
        cut = _repeat_start(text, lines, line_prefix + request.suffix, request)
        if cut is not None and cut > 0:
            return "\n".join(lines[:cut]) + "\n"
    cut = _repeat_start(text, lines, request.suffix[len(rest) + 1 :], request)
    return text if cut is None else "\n".join(lines[:cut])


def _repeat_start(text: str, lines: list[str], below: str, request: FimRequest) -> int | None:
    """The suggestion line where the first non-blank lines of `below` reappear, or None."""
    wanted = [normalize_line(line) for line in nonblank_lines(below, MATCH_LINES)]
    if not wanted:
        return None
    line_prefix = line_before_cursor(request.prefix)
    absolute = [line_prefix + lines[0], *lines[1:]]
    # The cursor's line can only repeat a suffix line when the prefix has no text on it.
    start = 0 if is_blank(line_prefix) else 1
    candidates = [i for i in range(start, len(lines)) if not is_blank(lines[i])]
    owing: list[bool] | None = None
    for n, i in enumerate(candidates):
        ahead = candidates[n : n + len(wanted)]
        if not all(normalize_line(absolute[j]) == w for j, w in zip(ahead, wanted, strict=False)):
            continue
        if not any(has_word(lines[j]) for j in ahead):
            if owing is None:
                state = state_after(request.prefix, request.language)
                owing = lines_owing_closers(text, request.language, state)
            if not owing[i]:
                continue
        return i
    return None


def _cut_repeated_line_tail(text: str, request: FimRequest) -> str:
    rest = line_after_cursor(request.suffix).rstrip()
    if is_blank(rest) or is_blank(text):
        return text
    body = text.rstrip(" \t")
    line_prefix = line_before_cursor(request.prefix)
    state = state_after(before_cursor_line(request.prefix), request.language)
    before = imbalance(line_prefix + body + rest, request.language, state)
    for size in range(len(rest), 0, -1):
        tail = rest[:size]
        if not body.endswith(tail) or (size < len(rest) and not _CLOSERS_ONLY.fullmatch(tail)):
            continue
        shorter = body[: len(body) - size]
        if imbalance(line_prefix + shorter + rest, request.language, state) <= before:
            return shorter
    return text
