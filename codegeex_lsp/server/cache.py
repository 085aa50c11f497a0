"""Two ways to answer without the model: an LRU of finished completions and typed-through forwarding.

The LRU is keyed on exactly what the model sees and how it decodes: the model generation (bumped
on every (re)load), the prompt's token ids and the sampling parameters. Same key, same greedy
output, so a hit is served as is. Cancelled decodes are never stored.

Typed-through: after a suggestion is shown at a cursor, the user often types its first characters
instead of accepting it. If the text before the new cursor is the old prefix plus a proper prefix of
the suggestion, and the text after the cursor still starts like before, the rest of the suggestion is
still the model's answer: serve it without a model call (and remember it for the next keystroke).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

_TAIL_CHARS = 256  # how much text before the old cursor must still match
_HEAD_CHARS = 128  # how much text after the cursor must still match


class CompletionCache:
    """A bounded LRU: key -> completion text ('' for "the model had nothing")."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def resize(self, size: int) -> None:
        self._size = size
        while len(self._entries) > max(size, 0):
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key: Hashable) -> str | None:
        text = self._entries.get(key)
        if text is not None:
            self._entries.move_to_end(key)
        return text

    def put(self, key: Hashable, text: str) -> None:
        if self._size <= 0:
            return
        self._entries[key] = text
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


@dataclass(frozen=True)
class Shown:
    """The last suggestion shown for one document, and where."""

    prefix_len: int
    prefix_tail: str
    suffix_head: str
    text: str
    mode: str


class TypedThrough:
    """The last shown suggestion per document, and the check that forwards its rest."""

    def __init__(self) -> None:
        self._shown: dict[str, Shown] = {}

    def remember(self, uri: str, prefix: str, suffix: str, text: str, mode: str) -> None:
        if not text:
            self._shown.pop(uri, None)
            return
        self._shown[uri] = Shown(len(prefix), prefix[-_TAIL_CHARS:], suffix[:_HEAD_CHARS], text, mode)

    def forget(self, uri: str) -> None:
        self._shown.pop(uri, None)

    def clear(self) -> None:
        self._shown.clear()

    def forward(self, uri: str, prefix: str, suffix: str) -> str | None:
        """The rest of the shown suggestion if the user typed its start, else None."""
        shown = self._shown.get(uri)
        if shown is None:
            return None
        typed_len = len(prefix) - shown.prefix_len
        if not 0 < typed_len < len(shown.text):
            return None
        typed = prefix[shown.prefix_len :]
        if not shown.text.startswith(typed):
            return None
        if not prefix.endswith(shown.prefix_tail, 0, shown.prefix_len):
            return None
        if suffix[: len(shown.suffix_head)] != shown.suffix_head:
            return None
        rest = shown.text[typed_len:]
        if not rest.strip():
            return None
        return rest
