"""Keep one line (LINE mode) or one block (BLOCK mode) of the suggestion.

LINE: the first line. When the cursor's line holds only indentation and the suggestion starts with
a line break, the model is proposing the next line's content while the cursor already sits on an
empty line: the first non-blank line is taken instead, minus the indentation the cursor's line
already has (a line indented less than the cursor loses its indentation: text is only inserted).
A suggestion starting with a line break after real text on the cursor's line keeps its empty first
line, i.e. nothing (discarded later by `drop_blank`).

BLOCK: lines are kept while they stay inside the block the suggestion starts in:
- the minimum indentation `limit` is, when the cursor's line has text, one column deeper than that
  line (the lines after it must belong to the statement or block it opens), except when the
  suggestion starts with a line break after a line that opens nothing (no trailing `:`, `{`, `(`,
  `[`): then the next statements may follow at that line's indentation; when the cursor's line is
  blank, the indentation of the suggestion's first non-blank line (more statements of the same
  block may follow); with a scope from the context stage (the function or class around the cursor),
  never less than one column deeper than the scope's first line;
- the first non-blank line indented less than `limit` ends the suggestion (lines that start inside
  a string or comment, e.g. docstring text, have no say). It is kept when it is a closing line
  (starts with `)`, `]` or `}`), so that the block the suggestion opened gets closed;
  `cut_suffix_overlap` later drops it when the suffix already has it. A line that closes and reopens
  (`} else {`, `else:`, `except ...:`, `} catch (e) {`) followed by a deeper line does not end it;
- brackets: a line after which the suggestion has closed more brackets than it opened (it closes
  one opened before the cursor) is the last line kept. This holds whatever the indentation says,
  which catches unindented output in brace languages.
"""

from __future__ import annotations

import re

from codegeex_lsp.postprocess._lexer import CLOSE_TO_OPEN, line_depths, lines_inside_block, state_after
from codegeex_lsp.postprocess._text import first_nonblank, indent_cols, is_blank, line_before_cursor
from codegeex_lsp.prompt.types import FimRequest

BLOCK_OPENERS = (":", "{", "(", "[")
"""Line endings after which the next lines belong to the line (a body, arguments, elements)."""

REOPENING_KEYWORDS = ("else", "elif", "except", "finally", "catch")
"""First words of lines that end one branch of a compound statement and open the next."""

_REOPENING = re.compile(
    rf"(?:[)\]}}]\s*)?(?:{'|'.join(REOPENING_KEYWORDS)})\b.*[:{{]\s*$"  # else:, } catch (e) {
    r"|[)\]}].*[{(\[]\s*$"  # }, {   }).then(() => {
)


def limit_scope(text: str, request: FimRequest) -> str:
    if request.mode == "LINE":
        return _first_line(text, request)
    return _first_block(text, request)


def _first_line(text: str, request: FimRequest) -> str:
    lines = text.split("\n")
    line_prefix = line_before_cursor(request.prefix)
    if len(lines) == 1 or not (is_blank(line_prefix) and is_blank(lines[0])):
        return lines[0]
    first = first_nonblank(lines)
    if first is None:
        return ""
    line = lines[first]
    return line[len(line_prefix) :] if line.startswith(line_prefix) else line.lstrip(" \t")


def _first_block(text: str, request: FimRequest) -> str:
    lines = text.split("\n")
    line_prefix = line_before_cursor(request.prefix)
    if is_blank(line_prefix):
        first = first_nonblank(lines)
        if first is None:
            return text
        limit = indent_cols(line_prefix + lines[0] if first == 0 else lines[first])
    elif is_blank(lines[0]) and not line_prefix.rstrip().endswith(BLOCK_OPENERS):
        first, limit = 0, indent_cols(line_prefix)
    else:
        first, limit = 0, indent_cols(line_prefix) + 1
    if request.scope is not None:
        limit = max(limit, indent_cols(request.scope.indent) + 1)
    state = state_after(request.prefix, request.language)
    depths = line_depths(text, request.language, state)
    inside = lines_inside_block(text, request.language, state)
    for i, line in enumerate(lines):
        counts = i > first and not (is_blank(line) or inside[i])
        if counts and indent_cols(line) < limit and not _reopens(lines, i):
            return "\n".join(lines[: i + 1] if _is_closing_line(line) else lines[:i])
        if depths[i] < 0:
            return "\n".join(lines[: i + 1])
    return text


def _is_closing_line(line: str) -> bool:
    return line.lstrip()[:1] in CLOSE_TO_OPEN


def _reopens(lines: list[str], i: int) -> bool:
    """`} else {`, `else:`: the line closes a branch and a deeper line follows it."""
    if not _REOPENING.match(lines[i].strip()):
        return False
    following = first_nonblank(lines, i + 1)
    return following is not None and indent_cols(lines[following]) > indent_cols(lines[i])
