"""Read a source file from disk and cut it at a cursor: the CLI's stand-in for an editor buffer.

Binary files and positions outside the file are `InputError`s with a clear message; an empty file
is not an error (there is simply nothing to complete).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codegeex_lsp.context.positions import LineIndex, Position
from codegeex_lsp.errors import InputError

MAX_FILE_BYTES = 8 << 20
_BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceCursor:
    path: Path
    text: str
    offset: int  # str offset of the cursor

    @property
    def prefix(self) -> str:
        return self.text[: self.offset]

    @property
    def suffix(self) -> str:
        return self.text[self.offset :]


def read_source(path: Path) -> str:
    """The file's text; refuses directories, huge files and binary data."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {size} bytes is too large to complete (limit {MAX_FILE_BYTES})")
    data = path.read_bytes()
    if b"\x00" in data[:_BINARY_SNIFF_BYTES]:
        raise InputError(f"{path}: looks like a binary file (NUL bytes); pass a text source file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def cursor_at(path: Path, text: str, line: int, character: int) -> SourceCursor:
    """Place the cursor at a 0-based LSP position (character in UTF-16 code units).

    Unlike the server (where LSP says to clamp), a position outside the file is an error here:
    a user typing the numbers by hand wants to know they are off.
    """
    index = LineIndex.build(text)
    if line < 0 or character < 0:
        raise InputError(f"line and character are 0-based and must not be negative (got {line}:{character})")
    if line >= index.n_lines:
        raise InputError(f"line {line} is outside {path.name} ({index.n_lines} lines, 0-based)")
    width = len(index.line_text(line).encode("utf-16-le")) // 2
    if character > width:
        raise InputError(f"character {character} is past the end of line {line} ({width} UTF-16 units)")
    return SourceCursor(path, text, index.offset_of(Position(line, character), "utf-16"))
