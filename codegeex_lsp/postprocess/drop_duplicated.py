"""Discard a suggestion that (nearly) equals the text already after the cursor.

The first `COMPARE_LINES` non-blank lines of the suggestion are compared with as many non-blank
lines of the suffix (starting with the rest of the cursor's line), each whitespace-squashed and
without a trailing `;` or `,`, then joined. They are duplicates when the edit distance is at most
`SIMILARITY` of the longer one's length (rounded down): short texts must be equal, since one
character is all that tells `return 1` from `return 0`.
"""

from __future__ import annotations

from codegeex_lsp.postprocess._text import nonblank_lines, squash, within_edit_distance
from codegeex_lsp.prompt.types import FimRequest

COMPARE_LINES = 3
SIMILARITY = 0.05


def drop_duplicated(text: str, request: FimRequest) -> str | None:
    ours = nonblank_lines(text, COMPARE_LINES)
    theirs = nonblank_lines(request.suffix, COMPARE_LINES)
    count = min(len(ours), len(theirs))
    if count == 0:
        return text
    a, b = _key(ours[:count]), _key(theirs[:count])
    limit = int(SIMILARITY * max(len(a), len(b)))
    return None if within_edit_distance(a, b, limit) else text


def _key(lines: list[str]) -> str:
    return " ".join(squash(line).rstrip(";,") for line in lines)
