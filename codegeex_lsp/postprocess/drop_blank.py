"""Discard a suggestion with nothing but whitespace left in it."""

from __future__ import annotations

from codegeex_lsp.postprocess._text import is_blank
from codegeex_lsp.postprocess.candidate import Candidate


def drop_blank(candidate: Candidate) -> Candidate | None:
    return None if is_blank(candidate.text) else candidate
