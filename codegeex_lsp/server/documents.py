"""The open documents, keyed by URI: context's `Document` plus the snapshot a request needs.

Every method runs on the scheduler's `documents` worker thread, never on the event loop: a didOpen
of a 50k-line file parses for a while, and edits and snapshots must not interleave.

A document over `max_bytes` (UTF-8) is not kept: only its size is, it gets no completions and its
definitions are not offered to other documents. Incremental edits to it are ignored (there is no
text to apply them to); a full-text change brings it back once it fits again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from codegeex_lsp.context import (
    CompletionContext,
    ContentChange,
    ContextOptions,
    Document,
    Position,
    PositionEncoding,
    build_context,
)

log = logging.getLogger(__name__)


DEFAULT_MAX_BYTES = 2_000_000


@dataclass(frozen=True)
class Oversized:
    """A document too large to keep: what the user is told, once per didOpen or growth past the cap."""

    uri: str
    n_bytes: int
    max_bytes: int

    def message(self) -> str:
        return (
            f"{self.uri} is {self.n_bytes / 1e6:.1f} MB, over the {self.max_bytes / 1e6:.1f} MB limit "
            "(setting documents.maxBytes): no completions in it"
        )


def utf8_size(text: str) -> int:
    """The UTF-8 length of `text` without encoding it when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="surrogatepass"))


class DocumentStore:
    def __init__(self, encoding: PositionEncoding = "utf-16", max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.encoding: PositionEncoding = encoding
        self.max_bytes = max_bytes
        self._docs: dict[str, Document] = {}
        self._oversized: dict[str, str | None] = {}  # uri -> languageId, for a full-text comeback

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def is_oversized(self, uri: str) -> bool:
        return uri in self._oversized

    def open(self, uri: str, text: str, language_id: str | None, version: int) -> Document | Oversized:
        """Open (or reopen) `uri`; an `Oversized` (and nothing kept) when it is over the cap."""
        self._docs.pop(uri, None)
        self._oversized.pop(uri, None)
        n_bytes = utf8_size(text)
        if n_bytes > self.max_bytes:
            self._oversized[uri] = language_id
            log.warning("%s: %d bytes, over the %d-byte cap: not kept", uri, n_bytes, self.max_bytes)
            return Oversized(uri, n_bytes, self.max_bytes)
        doc = Document(uri, text, language_id=language_id, version=version, encoding=self.encoding)
        self._docs[uri] = doc
        log.debug("opened %s (%s, %d lines)", uri, doc.language.language_id, doc.lines.n_lines)
        return doc

    def change(self, uri: str, changes: Sequence[ContentChange], version: int | None) -> bool | Oversized:
        """Apply one didChange: True when applied, False when ignored (not open, or over the cap),
        an `Oversized` when the document just grew past the cap and was dropped."""
        if uri in self._oversized:
            full = [c for c in changes if c.range is None]
            if not full:
                return False
            language_id = self._oversized[uri]
            opened = self.open(uri, full[-1].text, language_id, version or 0)
            if isinstance(opened, Oversized):
                return False
            rest = changes[changes.index(full[-1]) + 1 :]
            return self.change(uri, rest, version) if rest else True
        doc = self._docs.get(uri)
        if doc is None:
            log.warning("didChange for %s, which is not open: ignored", uri)
            return False
        doc.apply_changes(changes, version)
        if len(doc.data) > self.max_bytes:
            self._docs.pop(uri)
            self._oversized[uri] = doc.language.language_id
            log.warning("%s grew to %d bytes, over the %d-byte cap: dropped", uri, len(doc.data), self.max_bytes)
            return Oversized(uri, len(doc.data), self.max_bytes)
        return True

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)
        self._oversized.pop(uri, None)

    def snapshot(self, uri: str, position: Position, options: ContextOptions) -> CompletionContext | None:
        """The frozen completion context at `position` (clamped), or None for an unknown document."""
        doc = self._docs.get(uri)
        if doc is None:
            return None
        others = [d for u, d in self._docs.items() if u != uri]
        return build_context(doc, position, others, options)
