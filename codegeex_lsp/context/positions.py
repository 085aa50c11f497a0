"""LSP positions <-> offsets: one line index per text version, three position encodings.

LSP counts `character` in the code units of the negotiated encoding (UTF-16 unless the client
offers another), while Python slices by code point and tree-sitter by UTF-8 byte. Every conversion
between the three goes through `LineIndex`, so there is one place that knows the rules:

- line terminators are `\\n`, `\\r\\n` and a lone `\\r` (LSP), so a line index must not use
  `str.splitlines`, which also breaks at `\\f`, `\\x1c`, `\\u2028` and friends;
- a `character` past the end of its line means the end of the line, a `line` past the last line
  means the end of the text, negative values mean 0 (the spec's "defaults back" rule);
- a `character` that falls inside one code point (the second half of a surrogate pair, a middle
  byte of a UTF-8 sequence) snaps back to the start of that code point.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

PositionEncoding = Literal["utf-8", "utf-16", "utf-32"]
"""The LSP `PositionEncodingKind` values."""

ENCODINGS: tuple[PositionEncoding, ...] = ("utf-8", "utf-16", "utf-32")

_TERMINATOR = re.compile(r"\r\n|\r|\n")
_TERMINATOR_BYTES = re.compile(rb"\r\n|\r|\n")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, order=True)
class Position:
    """A zero-based LSP position; `character` is in the document's position encoding."""

    line: int
    character: int


@dataclass(frozen=True)
class Range:
    """A half-open LSP range."""

    start: Position
    end: Position


def sanitize_text(text: str) -> str:
    """Replace surrogate code points with U+FFFD.

    A Python str only holds surrogates when a client sent unpaired ones (JSON allows `\\ud800`).
    They cannot be encoded to UTF-8 for tree-sitter; each becomes one U+FFFD, which is also one
    UTF-16 unit, so positions the client computes over its own text stay valid.
    """
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def count_units(text: str, encoding: PositionEncoding) -> int:
    """Length of `text` in code units of `encoding` (text must be sanitized)."""
    if encoding == "utf-32" or text.isascii():
        return len(text)
    if encoding == "utf-16":
        return len(text.encode("utf-16-le")) // 2
    return len(text.encode("utf-8"))


def units_to_chars(line: str, units: int, encoding: PositionEncoding) -> int:
    """Code points of `line` covered by its first `units` code units, clamped and snapped back."""
    if units <= 0:
        return 0
    if encoding == "utf-32" or line.isascii():
        return min(units, len(line))
    if encoding == "utf-16":
        # Decoding a cut after a high surrogate drops the half pair: the snap back to its start.
        return len(line.encode("utf-16-le")[: 2 * units].decode("utf-16-le", errors="ignore"))
    return len(line.encode("utf-8")[:units].decode("utf-8", errors="ignore"))


class Offsets(Sequence[int]):
    """A read-only view of one offset array that hands out plain ints (never numpy scalars)."""

    __slots__ = ("_array",)

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __len__(self) -> int:
        return len(self._array)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self._array[i].tolist()
        return int(self._array[i])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


def _scan(text: str, data: bytes, base: int, base_byte: int, to_end: bool) -> tuple[np.ndarray, ...]:
    """Line starts and ends of `text` (whose UTF-8 is `data`), shifted by `base`/`base_byte`.

    `to_end`: `text` runs to the end of the document, so its last line has no terminator; else
    `text` ends with a terminator and the line after it belongs to the caller.
    """
    matches = [(m.start(), m.end()) for m in _TERMINATOR.finditer(text)]
    starts = [0, *(end for _, end in matches)]
    ends = [start for start, _ in matches]
    if to_end:
        ends.append(len(text))
    else:
        starts.pop()
    if len(data) != len(text):
        matches = [(m.start(), m.end()) for m in _TERMINATOR_BYTES.finditer(data)]
        starts_byte = [0, *(end for _, end in matches)]
        ends_byte = [start for start, _ in matches]
        if to_end:
            ends_byte.append(len(data))
        else:
            starts_byte.pop()
    else:  # ASCII: byte and code point offsets coincide
        starts_byte, ends_byte = starts, ends
    return (
        np.asarray(starts, dtype=np.int64) + base,
        np.asarray(ends, dtype=np.int64) + base,
        np.asarray(starts_byte, dtype=np.int64) + base_byte,
        np.asarray(ends_byte, dtype=np.int64) + base_byte,
    )


@dataclass(frozen=True, eq=False)
class LineIndex:
    """Line starts of one text version, in code points and in UTF-8 bytes.

    `starts[i]`/`ends[i]` delimit line i's content (without its terminator) as str offsets;
    `starts_byte[i]`/`ends_byte[i]` the same in bytes. There is always at least one line.

    The offsets are numpy arrays, so `splice` (one edit) rescans only the lines the edit touches
    and shifts the rest in one vectorized add: no per-line Python work outside the edit.
    """

    text: str
    _starts: np.ndarray
    _ends: np.ndarray
    _starts_byte: np.ndarray
    _ends_byte: np.ndarray

    @classmethod
    def build(cls, text: str, data: bytes | None = None) -> LineIndex:
        """Index `text`; `data` is its UTF-8 encoding when the caller already has it."""
        if data is None:
            data = text.encode("utf-8")
        return cls(text, *_scan(text, data, 0, 0, to_end=True))

    def splice(self, new_text: str, start: int, end: int, inserted: str) -> LineIndex:
        """The index of `new_text`: this text with str offsets `[start, end)` replaced by `inserted`.

        Only the lines from the one before the edit to the one after it are rescanned (a CRLF may
        form or split at either edge of the edit); later lines are shifted.
        """
        n = self.n_lines
        first = max(self.line_of(start) - 1, 0)
        after = min(self.line_of(end) + 2, n)  # first old line kept as is (shifted); n: none
        delta = len(inserted) - (end - start)
        while True:
            lo = int(self._starts[first])
            hi = int(self._starts[after]) + delta if after < n else len(new_text)
            if first > 0 and new_text[lo - 1 : lo + 1] == "\r\n":
                first -= 1
            elif after < n and new_text[hi - 1 : hi + 1] == "\r\n":
                after += 1
            else:
                break
        window = new_text[lo:hi]
        window_data = window.encode("utf-8")
        lo_byte = int(self._starts_byte[first])
        old_hi_byte = int(self._starts_byte[after]) if after < n else int(self._ends_byte[-1])
        old_lo_byte = lo_byte
        old_window_bytes = old_hi_byte - old_lo_byte
        delta_byte = len(window_data) - old_window_bytes if after < n else 0
        parts = _scan(window, window_data, lo, lo_byte, to_end=after >= n)
        shifts = (delta, delta, delta_byte, delta_byte)
        arrays = (self._starts, self._ends, self._starts_byte, self._ends_byte)
        merged = [
            np.concatenate((old[:first], part, old[after:] + shift))
            for old, part, shift in zip(arrays, parts, shifts, strict=True)
        ]
        return LineIndex(new_text, *merged)

    @property
    def starts(self) -> Offsets:
        return Offsets(self._starts)

    @property
    def ends(self) -> Offsets:
        return Offsets(self._ends)

    @property
    def starts_byte(self) -> Offsets:
        return Offsets(self._starts_byte)

    @property
    def ends_byte(self) -> Offsets:
        return Offsets(self._ends_byte)

    @property
    def n_lines(self) -> int:
        """Number of lines; a text ending in a terminator has an empty last line."""
        return len(self._starts)

    def line_text(self, line: int) -> str:
        """Content of `line` without its terminator ('' past the end)."""
        if not 0 <= line < self.n_lines:
            return ""
        return self.text[int(self._starts[line]) : int(self._ends[line])]

    def offset_of(self, position: Position, encoding: PositionEncoding) -> int:
        """The str offset of an LSP position, clamped as the module docstring says."""
        if position.line < 0:
            return 0
        if position.line >= self.n_lines:
            return len(self.text)
        line = self.line_text(position.line)
        return self.starts[position.line] + units_to_chars(line, position.character, encoding)

    def byte_offset_of(self, position: Position, encoding: PositionEncoding) -> int:
        """The UTF-8 byte offset of an LSP position, clamped."""
        return self.char_to_byte(self.offset_of(position, encoding))

    def line_of(self, offset: int) -> int:
        """The line holding str offset `offset` (a terminator belongs to the line it ends)."""
        offset = min(max(offset, 0), len(self.text))
        return int(np.searchsorted(self._starts, offset, side="right")) - 1

    def line_of_byte(self, offset_byte: int) -> int:
        """The line holding UTF-8 byte offset `offset_byte`."""
        return max(int(np.searchsorted(self._starts_byte, offset_byte, side="right")) - 1, 0)

    def position_of(self, offset: int, encoding: PositionEncoding) -> Position:
        """The LSP position of str offset `offset`; inside a CRLF it means the end of the line."""
        line = self.line_of(offset)
        start = self.starts[line]
        end = min(max(offset, start), self.ends[line])
        return Position(line, count_units(self.text[start:end], encoding))

    def position_of_byte(self, offset_byte: int, encoding: PositionEncoding) -> Position:
        """The LSP position of a UTF-8 byte offset (snapped back to a code point start)."""
        return self.position_of(self.byte_to_char(offset_byte), encoding)

    def char_to_byte(self, offset: int) -> int:
        """UTF-8 byte offset of str offset `offset`."""
        line = self.line_of(offset)
        start = self.starts[line]
        offset = min(max(offset, 0), len(self.text))
        return self.starts_byte[line] + len(self.text[start:offset].encode("utf-8"))

    def byte_to_char(self, offset_byte: int) -> int:
        """str offset of UTF-8 byte offset `offset_byte`, snapped back to a code point start."""
        line = self.line_of_byte(offset_byte)
        start_byte = self.starts_byte[line]
        end_byte = self.ends_byte[line]
        if offset_byte > end_byte:
            # Inside or after the terminator: terminators are ASCII, so bytes and chars agree.
            return min(self.ends[line] + (offset_byte - end_byte), len(self.text))
        start = self.starts[line]
        line_bytes = self.text[start : self.ends[line]].encode("utf-8")
        return start + len(line_bytes[: max(offset_byte - start_byte, 0)].decode("utf-8", errors="ignore"))


def point_of_byte(data: bytes, offset_byte: int) -> tuple[int, int]:
    """tree-sitter's (row, column) of a byte offset: rows break at `\\n` only, columns are bytes.

    This deliberately differs from LSP lines (a lone `\\r` is a line break there but not here);
    `tree.edit` needs tree-sitter's own view or incremental parses drift from fresh ones.
    """
    row = data.count(b"\n", 0, offset_byte)
    column = offset_byte - (data.rfind(b"\n", 0, offset_byte) + 1)
    return row, column
