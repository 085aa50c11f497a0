"""The open documents, keyed by URI: context's `Document` plus the snapshot a request needs.

Every method runs on the scheduler's `documents` worker thread, never on the event loop: a didOpen
of a 50k-line file parses for a while, and edits and snapshots must not interleave.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

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


class DocumentStore:
    def __init__(self, encoding: PositionEncoding = "utf-16") -> None:
        self.encoding: PositionEncoding = encoding
        self._docs: dict[str, Document] = {}

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def open(self, uri: str, text: str, language_id: str | None, version: int) -> Document:
        doc = Document(uri, text, language_id=language_id, version=version, encoding=self.encoding)
        self._docs[uri] = doc
        log.debug("opened %s (%s, %d lines)", uri, doc.language.language_id, doc.lines.n_lines)
        return doc

    def change(self, uri: str, changes: Sequence[ContentChange], version: int | None) -> bool:
        """Apply one didChange; False (and nothing done) for a document that was never opened."""
        doc = self._docs.get(uri)
        if doc is None:
            log.warning("didChange for %s, which is not open: ignored", uri)
            return False
        doc.apply_changes(changes, version)
        return True

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def snapshot(self, uri: str, position: Position, options: ContextOptions) -> CompletionContext | None:
        """The frozen completion context at `position` (clamped), or None for an unknown document."""
        doc = self._docs.get(uri)
        if doc is None:
            return None
        others = [d for u, d in self._docs.items() if u != uri]
        return build_context(doc, position, others, options)
