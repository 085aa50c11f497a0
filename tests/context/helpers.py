"""Helpers shared by the context tests: documents from text with an inline cursor marker."""

from __future__ import annotations

import re
from pathlib import Path

from codegeex_lsp.context.document import Document
from codegeex_lsp.context.positions import Position

HERE = Path(__file__).parent
CURSOR = "█"


def split_cursor(marked: str) -> tuple[str, int]:
    """(text, cursor byte offset) from text with exactly one CURSOR marker."""
    assert marked.count(CURSOR) == 1, f"need exactly one {CURSOR} in {marked!r}"
    index = marked.index(CURSOR)
    return marked.replace(CURSOR, ""), len(marked[:index].encode("utf-8"))


def make_doc(text: str, language_id: str | None, name: str = "doc", **kwargs: object) -> Document:
    """A document with a file URI under /work-tests (no file is read)."""
    return Document(f"file:///work-tests/{name}", text, language_id, **kwargs)  # type: ignore[arg-type]


def ref_offset(text: str, position: Position, encoding: str) -> int:
    """Reference: walk code points one by one, counting units per code point."""
    pieces = re.split(r"(\r\n|\r|\n)", text)
    contents, terminators = pieces[0::2], [*pieces[1::2], ""]
    if position.line < 0:
        return 0
    if position.line >= len(contents):
        return len(text)
    start = sum(len(c) + len(t) for c, t in zip(contents[: position.line], terminators, strict=False))
    used = 0
    for i, ch in enumerate(contents[position.line]):
        width = {"utf-8": len(ch.encode("utf-8")), "utf-16": 2 if ord(ch) > 0xFFFF else 1,
                 "utf-32": 1}[encoding]
        if used + width > position.character:
            return start + i
        used += width
    return start + len(contents[position.line])
