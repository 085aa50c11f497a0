"""Cut a line the model repeats in a loop at the end of the suggestion, keeping one copy.

Counted from the end: a run of at least `MIN_RUN` consecutive non-blank lines, each nearly equal to
the one before it (same indentation, edit distance of the squashed content at most
`SIMILARITY` of its length). The last line may be cut short by the token budget: it joins the run
when it is the start of the line before it, and is dropped with the run otherwise. Lines without a
letter or digit (`}`, `)`) never form a run: nested blocks close with several of them.
"""

from __future__ import annotations

from codegeex_lsp.postprocess._text import (
    has_word,
    indent_cols,
    is_blank,
    line_before_cursor,
    similar,
    squash,
)
from codegeex_lsp.prompt.types import FimRequest

MIN_RUN = 4
SIMILARITY = 0.1


def remove_repetitive_lines(text: str, request: FimRequest) -> str:
    lines = text.split("\n")
    indices = [i for i, line in enumerate(lines) if not is_blank(line)]
    if len(indices) < MIN_RUN:
        return text
    # The first line starts at the cursor: compare it with its indentation on the cursor's line.
    absolute = [line_before_cursor(request.prefix) + lines[0], *lines[1:]]
    keyed = [absolute[i] for i in indices]
    end = len(keyed) - 1
    if not _repeats(keyed[-2], keyed[-1], last=True):
        end -= 1  # a cut-off or different last line: the run may end before it
    start = end
    while start > 0 and _repeats(keyed[start - 1], keyed[start], last=start == len(keyed) - 1):
        start -= 1
    if end - start + 1 < MIN_RUN:
        return text
    return "\n".join(lines[: indices[start] + 1])


def _repeats(previous: str, line: str, last: bool) -> bool:
    if indent_cols(previous) != indent_cols(line) or not has_word(line):
        return False
    a, b = squash(previous), squash(line)
    if last and len(b) < len(a):
        a = a[: len(b)]
    return similar(a, b, SIMILARITY)
