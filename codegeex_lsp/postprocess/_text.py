"""Line helpers the filters share: the cursor's line, blank lines, indentation, normalized lines, edit
distance."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

TAB_WIDTH = 4
"""Columns a tab counts for when indentations are compared (tabs and spaces rarely mix in a file)."""


def line_before_cursor(prefix: str) -> str:
    """The text between the start of the cursor's line and the cursor (`prefix` ends at the cursor)."""
    return prefix[prefix.rfind("\n") + 1 :]


def line_after_cursor(suffix: str) -> str:
    """The text between the cursor and the end of its line, without the newline."""
    end = suffix.find("\n")
    return suffix if end < 0 else suffix[:end]


def before_cursor_line(prefix: str) -> str:
    """The prefix up to the start of the cursor's line."""
    return prefix[: prefix.rfind("\n") + 1]


def is_blank(text: str) -> bool:
    return not text.strip()


def indent_cols(line: str) -> int:
    """Width of the line's leading whitespace in columns."""
    cols = 0
    for ch in line:
        if ch == " ":
            cols += 1
        elif ch == "\t":
            cols += TAB_WIDTH - cols % TAB_WIDTH
        else:
            break
    return cols


def squash(text: str) -> str:
    """The text with each run of whitespace collapsed to one space and the ends stripped."""
    return " ".join(text.split())


def normalize_line(line: str) -> tuple[int, str]:
    """A line as compared for equality: indentation width and squashed content."""
    return indent_cols(line), squash(line)


def first_nonblank(lines: Sequence[str], start: int = 0) -> int | None:
    """Index of the first non-blank line at or after `start`, or None."""
    for i in range(start, len(lines)):
        if not is_blank(lines[i]):
            return i
    return None


def nonblank_lines(text: str, limit: int) -> list[str]:
    """The first `limit` non-blank lines of text, without splitting all of a long text."""
    found: list[str] = []
    for line in iter_lines(text):
        if not is_blank(line):
            found.append(line)
            if len(found) == limit:
                break
    return found


def iter_lines(text: str) -> Iterator[str]:
    start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def has_word(text: str) -> bool:
    """Whether the text holds a letter or digit (lines of only brackets and punctuation do not)."""
    return any(ch.isalnum() for ch in text)


def within_edit_distance(a: str, b: str, limit: int) -> bool:
    """Whether the Levenshtein distance of a and b is at most `limit` (banded, exits early)."""
    if a == b:
        return True
    if limit <= 0 or abs(len(a) - len(b)) > limit:
        return False
    too_far = limit + 1
    previous = [j if j <= limit else too_far for j in range(len(b) + 1)]
    for i, ch in enumerate(a, 1):
        current = [too_far] * (len(b) + 1)
        current[0] = i if i <= limit else too_far
        best = current[0]
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            cost = 0 if ch == b[j - 1] else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            current[j] = value
            best = min(best, value)
        if best > limit:
            return False
        previous = current
    return previous[len(b)] <= limit


def similar(a: str, b: str, ratio: float) -> bool:
    """Whether a and b differ by at most `ratio` of the longer one's length in edit distance."""
    return within_edit_distance(a, b, int(ratio * max(len(a), len(b))))
