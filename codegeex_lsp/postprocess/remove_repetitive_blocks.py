"""Cut blocks the model keeps generating in the same shape, keeping the first of them.

Blocks are groups of non-blank lines separated by blank lines (good enough in every language we
serve). Counted from the end: a run of at least `MIN_RUN` consecutive blocks, each nearly equal to
the one before it (edit distance of the squashed lines at most `SIMILARITY` of the length: handleB,
handleC, handleD ...). The last block may be cut short by the token budget: it joins the run when it
is nearly the start of the block before it, and is dropped with the run otherwise.
"""

from __future__ import annotations

from codegeex_lsp.postprocess._text import is_blank, similar, squash
from codegeex_lsp.prompt.types import FimRequest

MIN_RUN = 3
SIMILARITY = 0.1
MAX_BLOCK_CHARS = 4000
"""Longer blocks are compared for equality only (the edit distance is quadratic)."""


def remove_repetitive_blocks(text: str, request: FimRequest) -> str:
    lines = text.split("\n")
    blocks = _blocks(lines)
    if len(blocks) < MIN_RUN:
        return text
    keys = ["\n".join(squash(line) for line in lines[a:b]) for a, b in blocks]
    end = len(blocks) - 1
    if not _repeats(keys[-2], keys[-1], last=True):
        end -= 1
    start = end
    while start > 0 and _repeats(keys[start - 1], keys[start], last=start == len(keys) - 1):
        start -= 1
    if end - start + 1 < MIN_RUN:
        return text
    return "\n".join(lines[: blocks[start][1]])


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """[start, end) line ranges of the runs of non-blank lines."""
    blocks: list[tuple[int, int]] = []
    start = None
    for i, line in enumerate([*lines, ""]):
        if is_blank(line):
            if start is not None:
                blocks.append((start, i))
                start = None
        elif start is None:
            start = i
    return blocks


def _repeats(previous: str, block: str, last: bool) -> bool:
    if last and len(block) < len(previous):
        previous = previous[: len(block)]
    if max(len(previous), len(block)) > MAX_BLOCK_CHARS:
        return previous == block
    return similar(previous, block, SIMILARITY)
