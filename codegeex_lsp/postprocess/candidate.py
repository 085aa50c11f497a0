"""The item every filter reads and returns: one suggestion in its document, immutable.

A filter only ever edits `text`, the suggestion; `prefix` and `suffix` are the user's document and
stay as they came (`run_pipeline` enforces it by copying only `text` out of a filter's result).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from codegeex_lsp.prompt.types import FimRequest, Mode, ScopeInfo

_MODES = ("LINE", "BLOCK")


@dataclass(frozen=True)
class Candidate:
    """One suggestion: the raw or partly cleaned model `text` at the cursor of `request`.

    The request is the one the generator got, carried as it is (no copy of its fields): its
    `language` (LSP languageId), its `mode` ("LINE": finish the current line; "BLOCK": may add
    lines) and its `scope` (the innermost function or class around the cursor; a BLOCK suggestion
    may not leave it) are what the filters read. `request_id` only labels log records.
    """

    request: FimRequest
    text: str
    request_id: str | None = None

    def __post_init__(self) -> None:
        if self.request.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, not {self.request.mode!r}")

    @property
    def prefix(self) -> str:
        return self.request.prefix

    @property
    def suffix(self) -> str:
        return self.request.suffix

    @property
    def language(self) -> str:
        return self.request.language

    @property
    def mode(self) -> Mode:
        return self.request.mode

    @property
    def scope(self) -> ScopeInfo | None:
        return self.request.scope

    def with_text(self, text: str) -> Candidate:
        """The same candidate with another suggestion text; returns self when nothing changed."""
        return self if text == self.text else dataclasses.replace(self, text=text)

    @property
    def current_line_prefix(self) -> str:
        """The text between the start of the cursor's line and the cursor."""
        return self.prefix[self.prefix.rfind("\n") + 1 :]

    @property
    def current_line_suffix(self) -> str:
        """The text between the cursor and the end of its line (without the newline)."""
        end = self.suffix.find("\n")
        return self.suffix if end < 0 else self.suffix[:end]

    @property
    def prefix_before_line(self) -> str:
        """The prefix up to the start of the cursor's line."""
        return self.prefix[: self.prefix.rfind("\n") + 1]


Filter = Callable[[Candidate], Candidate | None]
"""A post-processing step: the candidate with a new text, or None to discard the suggestion."""
