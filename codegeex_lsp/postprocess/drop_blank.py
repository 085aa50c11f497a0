"""Discard a suggestion with nothing but whitespace left in it."""

from __future__ import annotations

from codegeex_lsp.postprocess._text import is_blank
from codegeex_lsp.prompt.types import FimRequest


def drop_blank(text: str, request: FimRequest) -> str | None:
    return None if is_blank(text) else text
