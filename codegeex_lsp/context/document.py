"""One open document: its text, its UTF-8 bytes, a line index and a tree-sitter tree, kept in sync.

`didChange` content changes are applied in order; each incremental change is also described to
the tree with `tree.edit`, and the line index is spliced (only the lines the edit touches are
rescanned). The tree is re-parsed lazily, when someone asks for it (a completion request), with the
edited old tree, which tree-sitter reuses: a burst of keystrokes costs one parse, not one each
(even an incremental parse of a 5 MB file takes a good fraction of a second). The result equals a
fresh parse (tests/context/test_document.py checks it over random edits in all three position
encodings).

Trees are never edited in place: a copy is edited, so a tree handed out earlier (to a completion
context being built) stays valid while the document moves on.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import tree_sitter

from codegeex_lsp.context.languages import LanguageInfo, language_for, parser_for
from codegeex_lsp.context.positions import (
    LineIndex,
    Position,
    PositionEncoding,
    Range,
    point_of_byte,
    sanitize_text,
)

_revisions = itertools.count(1)
_EDIT_LOG = 256  # splices remembered for `edits_since` (older ones: callers rebuild from scratch)


@dataclass(frozen=True)
class Splice:
    """One applied edit, for caches that follow the text: bytes `[start, old_end)` became
    `[start, new_end)`, old lines `start_line..old_end_line` were touched, and every line after
    them moved by `line_delta`."""

    previous: int  # the document's revision right before this edit
    revision: int  # and right after it
    start_byte: int
    old_end_byte: int
    new_end_byte: int
    line_delta: int
    start_line: int
    old_end_line: int


@dataclass(frozen=True)
class ContentChange:
    """An LSP `TextDocumentContentChangeEvent`: `range` None replaces the whole text."""

    text: str
    range: Range | None = None


@dataclass(frozen=True)
class TreeEdit:
    """One splice described the way `tree.edit` wants it: bytes, and tree-sitter points."""

    start_byte: int
    old_end_byte: int
    new_end_byte: int
    start_point: tuple[int, int]
    old_end_point: tuple[int, int]
    new_end_point: tuple[int, int]

    def apply(self, tree: tree_sitter.Tree) -> None:
        """Shift `tree`'s nodes for this splice (in place: pass a copy)."""
        tree.edit(
            start_byte=self.start_byte,
            old_end_byte=self.old_end_byte,
            new_end_byte=self.new_end_byte,
            start_point=self.start_point,
            old_end_point=self.old_end_point,
            new_end_point=self.new_end_point,
        )


def tree_edit(old_data: bytes, new_data: bytes, start_byte: int, old_end_byte: int) -> TreeEdit:
    """The edit that turns `old_data` into `new_data` by replacing `[start_byte, old_end_byte)`.

    Old points come from the old bytes, the new end point from the new bytes: a splice that
    inserts or removes `\n` moves every later row.
    """
    new_end_byte = start_byte + len(new_data) - len(old_data) + (old_end_byte - start_byte)
    return TreeEdit(
        start_byte=start_byte,
        old_end_byte=old_end_byte,
        new_end_byte=new_end_byte,
        start_point=point_of_byte(old_data, start_byte),
        old_end_point=point_of_byte(old_data, old_end_byte),
        new_end_point=point_of_byte(new_data, new_end_byte),
    )


def path_from_uri(uri: str) -> str:
    """The file-system path of a `file:` URI; any other URI is returned unchanged."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri
    path = unquote(parsed.path)
    # file:///c%3A/x -> /c:/x on Windows clients; keep the drive form they mean.
    if len(path) >= 3 and path[0] == "/" and path[2] == ":":
        path = path[1:]
    return path


class Document:
    """The server's copy of one open text document.

    Mutable on purpose (it follows the editor); everything downstream reads it once per request
    and keeps only frozen results. `revision` changes on every change, so caches can key on it.
    """

    def __init__(
        self,
        uri: str,
        text: str,
        language_id: str | None = None,
        version: int = 0,
        encoding: PositionEncoding = "utf-16",
        path: str | None = None,
    ) -> None:
        self.uri = uri
        self.path = path if path is not None else path_from_uri(uri)
        self.version = version
        self.encoding: PositionEncoding = encoding
        self.language: LanguageInfo = language_for(language_id, self.path)
        self._parser = parser_for(self.language)
        self._splices: collections.deque[Splice] = collections.deque(maxlen=_EDIT_LOG)
        self._reparsed: dict[int, list[tuple[int, int]]] = {}  # revision -> tree.changed_ranges
        self._set_text(sanitize_text(text))
        self._tree: tree_sitter.Tree | None = None
        self._stale = self._parser is not None  # the tree must be (re)parsed before it is read

    @property
    def text(self) -> str:
        """The current text (surrogates replaced by U+FFFD)."""
        return self._text

    @property
    def data(self) -> bytes:
        """The current text as UTF-8, the bytes the tree was parsed from."""
        return self._data

    @property
    def lines(self) -> LineIndex:
        """The line index of the current text."""
        return self._lines

    @property
    def tree(self) -> tree_sitter.Tree | None:
        """The syntax tree of the current text, or None for a language without a grammar."""
        if self._stale:
            edited, self._tree = self._tree, self._parse(self._tree)
            self._stale = False
            if edited is not None and self._tree is not None and self._splices:
                # Where the structure changed beyond the edited bytes (an unclosed bracket, a
                # dedent): caches that follow the text need to know.
                self._reparsed = {r: v for r, v in self._reparsed.items() if r >= self._splices[0].revision}
                self._reparsed[self._revision] = [
                    (r.start_byte, r.end_byte) for r in edited.changed_ranges(self._tree)
                ]
        return self._tree

    def reparsed_ranges(self, revision: int) -> list[tuple[int, int]]:
        """Byte ranges whose syntax changed when the tree was re-parsed at `revision` (if it was)."""
        return self._reparsed.get(revision, [])

    @property
    def revision(self) -> int:
        """A process-unique number for the current text; changes with every change."""
        return self._revision

    def _set_text(self, text: str) -> None:
        self._text = text
        self._data = text.encode("utf-8")
        self._lines = LineIndex.build(text, self._data)
        self._revision = next(_revisions)
        self._splices.clear()  # a whole new text: nothing follows from the old one
        self._reparsed = {}

    def splices_since(self, revision: int) -> list[Splice] | None:
        """The edits from `revision` to now, in order; None if they are not all known (a full
        replacement since, or more edits than the log keeps)."""
        if revision == self._revision:
            return []
        splices = list(self._splices)
        for i, splice in enumerate(splices):
            if splice.previous == revision:
                return splices[i:]
        return None

    def _parse(self, old_tree: tree_sitter.Tree | None) -> tree_sitter.Tree | None:
        if self._parser is None:
            return None
        if old_tree is None:
            return self._parser.parse(self._data)
        return self._parser.parse(self._data, old_tree)

    def apply_changes(self, changes: Iterable[ContentChange], version: int | None = None) -> None:
        """Apply one `didChange` notification's changes in order; the tree is re-parsed on next read.

        The tree handed out last is never edited in place: the first edit after a parse edits a copy.
        """
        for change in changes:
            if change.range is None:
                self._set_text(sanitize_text(change.text))
                self._tree = None
                self._stale = self._parser is not None
                continue
            edit = self._splice(change.range, sanitize_text(change.text))
            if self._tree is not None:
                if not self._stale:
                    self._tree = self._tree.copy()
                edit.apply(self._tree)
            self._stale = self._parser is not None
        if version is not None:
            self.version = version

    def apply_change(self, change: ContentChange, version: int | None = None) -> None:
        """Apply a single change (see `apply_changes`)."""
        self.apply_changes((change,), version)

    def _splice(self, range_: Range, new_text: str) -> TreeEdit:
        """Replace `range_` with `new_text`; return the matching tree edit."""
        start = self._lines.offset_of(range_.start, self.encoding)
        end = self._lines.offset_of(range_.end, self.encoding)
        if end < start:  # a reversed range from a confused client: same span
            start, end = end, start
        start_byte = self._lines.char_to_byte(start)
        old_end_byte = self._lines.char_to_byte(end)
        old_data = self._data
        self._text = self._text[:start] + new_text + self._text[end:]
        self._data = old_data[:start_byte] + new_text.encode("utf-8") + old_data[old_end_byte:]
        n_lines, previous = self._lines.n_lines, self._revision
        start_line, old_end_line = self._lines.line_of(start), self._lines.line_of(end)
        self._lines = self._lines.splice(self._text, start, end, new_text)
        self._revision = next(_revisions)
        edit = tree_edit(old_data, self._data, start_byte, old_end_byte)
        self._splices.append(Splice(
            previous, self._revision, start_byte, old_end_byte, edit.new_end_byte, self._lines.n_lines - n_lines,
            start_line, old_end_line,
        ))
        return edit

    def offset_at(self, position: Position) -> int:
        """str offset of an LSP position in this document's encoding (clamped)."""
        return self._lines.offset_of(position, self.encoding)

    def byte_offset_at(self, position: Position) -> int:
        """UTF-8 byte offset of an LSP position in this document's encoding (clamped)."""
        return self._lines.byte_offset_of(position, self.encoding)

    def position_at(self, offset: int) -> Position:
        """LSP position (this document's encoding) of a str offset."""
        return self._lines.position_of(offset, self.encoding)

    def position_at_byte(self, offset_byte: int) -> Position:
        """LSP position (this document's encoding) of a UTF-8 byte offset."""
        return self._lines.position_of_byte(offset_byte, self.encoding)

    def cursor_split(self, position: Position) -> tuple[str, str]:
        """(prefix, suffix): the text before and after the cursor."""
        offset = self.offset_at(position)
        return self._text[:offset], self._text[offset:]
