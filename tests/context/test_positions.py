"""Exact LSP position <-> offset conversions in UTF-8/16/32: CJK, emoji, CRLF, lone CR, clamping."""

from __future__ import annotations

import random

import pytest

from codegeex_lsp.context.positions import (
    ENCODINGS,
    LineIndex,
    Position,
    count_units,
    point_of_byte,
    sanitize_text,
)

from .helpers import ref_offset

P = Position


# (text, position, encoding, expected str offset)
EXACT = [
    ("a中b", P(0, 1), "utf-16", 1),
    ("a中b", P(0, 2), "utf-16", 2),
    ("a中b", P(0, 4), "utf-8", 2),
    ("a中b", P(0, 2), "utf-32", 2),
    ("x😀y", P(0, 3), "utf-16", 2),  # emoji is two UTF-16 units
    ("x😀y", P(0, 2), "utf-16", 1),  # inside the surrogate pair: snap back
    ("x😀y", P(0, 5), "utf-8", 2),  # emoji is four UTF-8 bytes
    ("x😀y", P(0, 3), "utf-8", 1),  # inside the UTF-8 sequence: snap back
    ("x😀y", P(0, 2), "utf-32", 2),
    ("ab\r\ncd", P(1, 0), "utf-16", 4),  # CRLF is one terminator
    ("ab\r\ncd", P(0, 9), "utf-16", 2),  # past the line end: the end before \r\n
    ("ab\rcd\ref", P(2, 1), "utf-16", 7),  # lone CR breaks lines
    ("ab\rcd\ref", P(1, 5), "utf-8", 5),
    ("ab\n\ncd", P(1, 0), "utf-32", 3),  # empty line
    ("ab\n", P(1, 0), "utf-16", 3),  # last line after a final newline
    ("ab\n", P(5, 2), "utf-16", 3),  # past the last line: end of text
    ("ab\ncd", P(-1, 3), "utf-16", 0),
    ("ab\ncd", P(1, -4), "utf-16", 3),
    ("中文\r\n😀😀", P(1, 2), "utf-16", 5),
    ("中文\r\n😀😀", P(1, 4), "utf-8", 5),
    ("中文\r\n😀😀", P(0, 6), "utf-8", 2),
    ("a\u2028b", P(0, 2), "utf-16", 2),  # U+2028 is not an LSP line break
    ("a\x0cb\x1cc", P(0, 4), "utf-16", 4),  # nor are form feed and file separator
]


@pytest.mark.parametrize(("text", "position", "encoding", "expected"), EXACT)
def test_exact_offsets(text: str, position: Position, encoding: str, expected: int) -> None:
    index = LineIndex.build(text)
    assert index.offset_of(position, encoding) == expected  # type: ignore[arg-type]
    assert ref_offset(text, position, encoding) == expected
    assert index.byte_offset_of(position, encoding) == len(text[:expected].encode("utf-8"))  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "offset", "expected"), [
    ("x😀y", 2, {"utf-8": P(0, 5), "utf-16": P(0, 3), "utf-32": P(0, 2)}),
    ("中\r\n文x", 4, {"utf-8": P(1, 3), "utf-16": P(1, 1), "utf-32": P(1, 1)}),
    ("ab\r\ncd", 3, {"utf-8": P(0, 2), "utf-16": P(0, 2), "utf-32": P(0, 2)}),  # inside CRLF
    ("a\rb", 3, {"utf-8": P(1, 1), "utf-16": P(1, 1), "utf-32": P(1, 1)}),
    ("", 0, {"utf-8": P(0, 0), "utf-16": P(0, 0), "utf-32": P(0, 0)}),
    ("ab", 99, {"utf-8": P(0, 2), "utf-16": P(0, 2), "utf-32": P(0, 2)}),
])
def test_exact_positions(text: str, offset: int, expected: dict[str, Position]) -> None:
    index = LineIndex.build(text)
    for encoding, position in expected.items():
        assert index.position_of(offset, encoding) == position  # type: ignore[arg-type]


def test_line_index_counts_lsp_terminators_only() -> None:
    index = LineIndex.build("a\r\nb\rc\nd\u2028e\x0c")
    assert index.n_lines == 4
    assert [index.line_text(i) for i in range(4)] == ["a", "b", "c", "d\u2028e\x0c"]
    assert index.line_text(9) == ""


def test_byte_char_conversions_snap_back() -> None:
    text = "a😀中\r\nb"
    index = LineIndex.build(text)
    assert [index.byte_to_char(b) for b in range(12)] == [0, 1, 1, 1, 1, 2, 2, 2, 3, 4, 5, 6]
    assert [index.char_to_byte(c) for c in range(7)] == [0, 1, 5, 8, 9, 10, 11]
    assert index.position_of_byte(3, "utf-16") == P(0, 1)
    assert index.line_of_byte(10) == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_round_trip_random_text(encoding: str) -> None:
    rng = random.Random(f"round-trip-{encoding}")
    alphabet = ["a", "Z", " ", "\t", "中", "文", "é", "😀", "𝄞", "\n", "\r\n", "\r", "\x00"]
    for _ in range(60):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        index = LineIndex.build(text)
        data = text.encode("utf-8")
        for offset in range(len(text) + 1):
            position = index.position_of(offset, encoding)  # type: ignore[arg-type]
            back = index.offset_of(position, encoding)  # type: ignore[arg-type]
            # Offsets between \r and \n have no position of their own: they map to the line end.
            in_crlf = 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n"
            assert back == (offset - 1 if in_crlf else offset)
            assert index.char_to_byte(offset) == len(text[:offset].encode("utf-8"))
            assert index.byte_to_char(index.char_to_byte(offset)) == offset
        for _ in range(20):
            position = P(rng.randrange(-1, index.n_lines + 2), rng.randrange(-1, 12))
            assert index.offset_of(position, encoding) == ref_offset(text, position, encoding)  # type: ignore[arg-type]
        assert index.starts_byte[-1] <= len(data)


def test_count_units() -> None:
    assert [count_units("a中😀", e) for e in ENCODINGS] == [8, 4, 3]


def test_sanitize_replaces_lone_surrogates_keeping_utf16_length() -> None:
    raw = "a\ud800b\udc00\ud83d\ude00"
    clean = sanitize_text(raw)
    assert clean == "a\ufffdb\ufffd\ufffd\ufffd"
    clean.encode("utf-8")  # must not raise
    assert len(clean.encode("utf-16-le")) == len(raw.encode("utf-16-le", "surrogatepass"))
    assert sanitize_text("plain") == "plain"


def test_point_of_byte_breaks_rows_at_newline_only() -> None:
    data = "a\rb\r\n中x".encode()
    assert point_of_byte(data, 0) == (0, 0)
    assert point_of_byte(data, 4) == (0, 4)  # lone \r is no row break for tree-sitter
    assert point_of_byte(data, 5) == (1, 0)
    assert point_of_byte(data, 8) == (1, 3)


@pytest.mark.parametrize("seed", range(6))
def test_spliced_index_equals_a_fresh_one(seed: int) -> None:
    """Edits that make and break CRLF pairs at both of their edges, in mixed-width text."""
    rng = random.Random(f"splice-{seed}")
    alphabet = ["a", "中", "😀", "\n", "\r", "\r\n", "\r", "\n", " "]
    text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
    index = LineIndex.build(text)
    for _ in range(150):
        start = rng.randrange(len(text) + 1)
        end = min(start + rng.choice([0, 0, 1, 2, 5, 30]), len(text))
        inserted = "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 1, 2, 4])))
        text = text[:start] + inserted + text[end:]
        index = index.splice(text, start, end, inserted)
        fresh = LineIndex.build(text)
        for name in ("starts", "ends", "starts_byte", "ends_byte"):
            assert list(getattr(index, name)) == list(getattr(fresh, name)), (name, text)
        assert all(type(v) is int for v in index.starts)
