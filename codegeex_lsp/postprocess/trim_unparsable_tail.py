"""BLOCK mode: drop trailing lines until the document parses no worse than without the suggestion.

The token budget often ends a block suggestion in the middle of a line (`return fib(n - 1) + fib(`).
With a tree-sitter grammar for the language, the document with the suggestion inserted is parsed and
its syntax errors (ERROR and MISSING nodes) counted against the document without it. When the
suggestion adds errors, its last lines are dropped one at a time (at most `MAX_DROPPED_LINES`) until
it adds none; when no such cut exists the suggestion is left as it is (the document may simply be
mid-edit). Only `WINDOW_CHARS` around the cursor are parsed, cut at line boundaries, the same window
for both parses. Grammars come from the language registry (`context.languages`); languages without
one pass through.
"""

from __future__ import annotations

import tree_sitter

from codegeex_lsp.context.languages import language_for, parser_for
from codegeex_lsp.postprocess._text import is_blank
from codegeex_lsp.prompt.types import FimRequest

MAX_DROPPED_LINES = 8
WINDOW_CHARS = 16_000


def trim_unparsable_tail(text: str, request: FimRequest) -> str:
    if request.mode != "BLOCK" or "\n" not in text.strip():
        return text
    parser = parser_for(language_for(request.language))
    if parser is None:
        return text
    before, after = _window(request.prefix, request.suffix)
    baseline = count_errors(parser, before + after)
    if count_errors(parser, before + text + after) <= baseline:
        return text
    lines = text.split("\n")
    for keep in range(len(lines) - 1, max(0, len(lines) - 1 - MAX_DROPPED_LINES), -1):
        kept = "\n".join(lines[:keep])
        if is_blank(kept):
            break
        if count_errors(parser, before + kept + after) <= baseline:
            return kept
    return text


def count_errors(parser: tree_sitter.Parser, source: str) -> int:
    """ERROR and MISSING nodes in the parse of source (only subtrees with errors are visited)."""
    tree = parser.parse(source.encode("utf-8"))
    count = 0
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        count += node.is_error or node.is_missing
        if node.has_error:
            stack.extend(node.children)
    return count


def _window(prefix: str, suffix: str) -> tuple[str, str]:
    if len(prefix) > WINDOW_CHARS:
        cut = len(prefix) - WINDOW_CHARS
        prefix = prefix[prefix.find("\n", cut) + 1 :] if "\n" in prefix[cut:] else prefix[cut:]
    if len(suffix) > WINDOW_CHARS:
        end = suffix.rfind("\n", 0, WINDOW_CHARS)
        suffix = suffix[: end if end > 0 else WINDOW_CHARS]
    return prefix, suffix
