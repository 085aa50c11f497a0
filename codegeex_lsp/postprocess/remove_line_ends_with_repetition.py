"""Drop a last line that ends in a degenerate loop (`0, 0, 0, 0, 0, 0, ...`, `aaaaaaaa...`).

Small models stuck in a loop inside one line run until the token budget ends, so the loop sits at
the end of the last non-blank line. Such a line is dropped whole (nothing of it is worth keeping);
when it was the only line the text becomes empty and `drop_blank` discards it. The repeated unit
must contain a letter or digit: separator comments (`# -----`, `// ======`) are fine.
"""

from __future__ import annotations

import re

from codegeex_lsp.postprocess._text import has_word, is_blank
from codegeex_lsp.prompt.types import FimRequest

REPETITION_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(.{3,}?)\1{5,}$"),  # a unit of 3+ characters, 6+ times in a row
    re.compile(r"(.{10,}?)\1{3,}$"),  # a unit of 10+ characters, 4+ times in a row
)
MAX_LINE_CHARS = 400
"""Only the end of a very long line is searched (the patterns backtrack)."""


def remove_line_ends_with_repetition(text: str, request: FimRequest) -> str:
    lines = text.split("\n")
    last = len(lines) - 1
    while last >= 0 and is_blank(lines[last]):
        last -= 1
    if last < 0:
        return text
    tail = lines[last][-MAX_LINE_CHARS:]
    for pattern in REPETITION_PATTERNS:
        match = pattern.search(tail)
        if match and has_word(match.group(1)):
            return "\n".join(lines[:last]).rstrip()
    return text
