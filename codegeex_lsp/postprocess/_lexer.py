"""Just enough lexing for the filters: where strings and comments are, and bracket balance.

This is a heuristic scanner, not a parser: it takes each language's comment and string delimiters
from the language registry (`grammars/languages.toml`), skips escaped quotes, and carries an open
long string or block comment from the prefix into the suggestion. Brackets inside strings and
comments do not count. An id the registry does not know is scanned as plain text (all code).
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from codegeex_lsp.context.languages import LanguageInfo, language_for

OPEN_TO_CLOSE = {"(": ")", "[": "]", "{": "}"}
CLOSE_TO_OPEN = {close: open_ for open_, close in OPEN_TO_CLOSE.items()}


@dataclass(frozen=True)
class Lexical:
    """Comment and string delimiters of one language, as the scanner uses them.

    `long_strings` may span lines (Python triple quotes, JS/Go backticks); `short_strings` end at the
    line's end. With `char_literals`, `'` opens only a `'x'` literal (Rust lifetimes stay code).
    """

    line_comments: tuple[str, ...]
    block_comment: tuple[str, str] | None
    long_strings: tuple[str, ...]
    short_strings: tuple[str, ...]
    char_literals: bool = False

    @classmethod
    def of(cls, info: LanguageInfo) -> Lexical:
        """The scanner's view of a registry entry."""
        return cls(
            line_comments=info.line_comments,
            block_comment=info.block_comment,
            long_strings=info.long_strings,
            short_strings=info.strings,
            char_literals=info.char_literals,
        )


def lexical_for(language: str) -> Lexical:
    """The delimiters of a languageId (or alias), from the registry; unknown ids are plain text."""
    return _lexical(language_for(language))


@functools.lru_cache(maxsize=128)
def _lexical(info: LanguageInfo) -> Lexical:
    return Lexical.of(info)


@dataclass(frozen=True)
class Scan:
    """Where a text is not code: `spans` are [start, end) ranges inside strings or comments.

    `open_at_end` is the delimiter of a string or comment still open where the text ends.
    """

    spans: tuple[tuple[int, int], ...]
    open_at_end: str | None


_CHAR_LITERAL = re.compile(r"'(?:\\.[^'\n]{0,8}|[^\\'\n])'")


@functools.lru_cache(maxsize=64)
def _opener_re(lex: Lexical) -> re.Pattern[str]:
    tokens = {*lex.line_comments, *lex.long_strings, *lex.short_strings}
    if lex.block_comment:
        tokens.add(lex.block_comment[0])
    if lex.char_literals:
        tokens.add("'")
    if not tokens:
        return re.compile(r"(?!x)x")
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))


def _closer(lex: Lexical, opener: str) -> str:
    if lex.block_comment and opener == lex.block_comment[0]:
        return lex.block_comment[1]
    return opener


def _find_unescaped(text: str, token: str, start: int, escapes: bool) -> int:
    while True:
        found = text.find(token, start)
        if found < 0 or not escapes:
            return found
        backslashes = 0
        while found - backslashes - 1 >= start and text[found - backslashes - 1] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return found
        start = found + 1


def _close(text: str, lex: Lexical, opener: str, start: int) -> tuple[int, str | None]:
    """End of the string/comment opened by `opener`, whose body starts at `start`.

    Returns (end, still_open): end is exclusive; still_open is the opener when the text ends first.
    """
    closer = _closer(lex, opener)
    is_comment = bool(lex.block_comment) and opener == lex.block_comment[0]
    found = _find_unescaped(text, closer, start, escapes=not is_comment)
    if opener in lex.short_strings and opener not in lex.long_strings:
        newline = text.find("\n", start)
        if newline >= 0 and (found < 0 or newline < found):
            return newline, None  # unterminated on its line: the string ends with the line
    if found < 0:
        return len(text), opener
    return found + len(closer), None


def scan(text: str, lex: Lexical, open_at_start: str | None = None) -> Scan:
    """Find strings and comments in text, starting inside `open_at_start` when given."""
    spans: list[tuple[int, int]] = []
    pos = 0
    if open_at_start is not None:
        end, still_open = _close(text, lex, open_at_start, 0)
        spans.append((0, end))
        if still_open:
            return Scan(tuple(spans), still_open)
        pos = end
    opener_re = _opener_re(lex)
    while True:
        match = opener_re.search(text, pos)
        if match is None:
            return Scan(tuple(spans), None)
        token, start = match.group(), match.start()
        if token in lex.line_comments:
            newline = text.find("\n", start)
            end = len(text) if newline < 0 else newline
        elif lex.char_literals and token == "'":
            literal = _CHAR_LITERAL.match(text, start)
            if literal is None:  # a lifetime or label: code
                pos = start + 1
                continue
            end = literal.end()
        else:
            end, still_open = _close(text, lex, token, match.end())
            if still_open:
                spans.append((start, end))
                return Scan(tuple(spans), still_open)
        spans.append((start, end))
        pos = end


@functools.lru_cache(maxsize=32)
def state_after(text: str, language: str) -> str | None:
    """The string or comment delimiter still open at the end of text (e.g. the prefix), or None."""
    return scan(text, lexical_for(language)).open_at_end


def code_chars(text: str, found: Scan) -> Iterator[tuple[int, str]]:
    """(index, char) of every character of text outside strings and comments."""
    pos = 0
    for start, end in found.spans:
        for i in range(pos, start):
            yield i, text[i]
        pos = max(pos, end)
    for i in range(pos, len(text)):
        yield i, text[i]


@dataclass(frozen=True)
class Brackets:
    """Bracket balance of a text: positions of openers never closed and of closers with no opener."""

    unclosed: tuple[int, ...]
    unmatched: tuple[int, ...]


def match_brackets(text: str, found: Scan) -> Brackets:
    stack: list[tuple[str, int]] = []
    unmatched: list[int] = []
    for i, ch in code_chars(text, found):
        if ch in OPEN_TO_CLOSE:
            stack.append((ch, i))
        elif ch in CLOSE_TO_OPEN:
            if stack and stack[-1][0] == CLOSE_TO_OPEN[ch]:
                stack.pop()
            else:
                unmatched.append(i)
    return Brackets(tuple(i for _, i in stack), tuple(unmatched))


def imbalance(text: str, language: str, open_at_start: str | None = None) -> int:
    """Unclosed openers + unmatched closers + 1 for a string left open: 0 is balanced."""
    lex = lexical_for(language)
    found = scan(text, lex, open_at_start)
    brackets = match_brackets(text, found)
    return len(brackets.unclosed) + len(brackets.unmatched) + (found.open_at_end is not None)


def line_depths(text: str, language: str, open_at_start: str | None = None) -> list[int]:
    """Bracket depth at the end of each line of text, relative to its start (negative: closes more
    than it opened, i.e. closes brackets opened before the text)."""
    found = scan(text, lexical_for(language), open_at_start)
    line_ends = [i for i, ch in enumerate(text) if ch == "\n"] + [len(text)]
    depths: list[int] = []
    depth = 0
    line = 0
    for i, ch in code_chars(text, found):
        while i > line_ends[line]:
            depths.append(depth)
            line += 1
        if ch in OPEN_TO_CLOSE:
            depth += 1
        elif ch in CLOSE_TO_OPEN:
            depth -= 1
    while len(depths) < len(line_ends):
        depths.append(depth)
    return depths


def lines_owing_closers(text: str, language: str, open_at_start: str | None = None) -> list[bool]:
    """For each line of text, whether the text up to its end has closed something opened before
    the text: more brackets closed than opened, or the string or comment open at the start."""
    owing = [depth < 0 for depth in line_depths(text, language, open_at_start)]
    if open_at_start is not None:
        found = scan(text, lexical_for(language), open_at_start)
        if not (len(found.spans) == 1 and found.open_at_end is not None):
            closing_line = text.count("\n", 0, found.spans[0][1])
            owing[closing_line:] = [True] * (len(owing) - closing_line)
    return owing


def lines_inside_block(text: str, language: str, open_at_start: str | None = None) -> list[bool]:
    """For each line of text, whether it starts inside a string or comment begun on an earlier line
    (or before the text)."""
    found = scan(text, lexical_for(language), open_at_start)
    result = []
    start = 0
    for line in text.split("\n"):
        result.append(_carried(found, start, open_at_start is not None))
        start += len(line) + 1
    return result


def _carried(found: Scan, pos: int, open_at_start: bool) -> bool:
    i = bisect.bisect_right(found.spans, (pos, float("inf"))) - 1
    if i < 0:
        return False
    span_start, span_end = found.spans[i]
    if span_start == pos == 0:
        return open_at_start
    return span_start < pos < span_end
