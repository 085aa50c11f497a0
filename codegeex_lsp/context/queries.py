"""Compiled tree-sitter queries from `grammars/<language>/<kind>.scm`, and running them.

Each language ships four queries; their capture names are the contract with the rest of the
context stage:

- `scopes`: `@scope.function` / `@scope.class` (enclosing scopes, optional `@name`), `@block`
  (bodies a header opens), `@comment` and `@string` (text where code rules do not apply);
- `functions`: `@definition.function` with `@name`;
- `classes`: `@definition.class` with `@name`;
- `imports`: `@import`.

Written against py-tree-sitter 0.26: `Query(language, source)` compiles and `QueryCursor` runs
(`captures` -> {name: [Node]}, `matches` -> [(pattern, {name: [Node]})]).
"""

from __future__ import annotations

import functools
import logging
from typing import Literal

import tree_sitter

from codegeex_lsp.context.languages import LanguageInfo, grammars_dir, ts_language

log = logging.getLogger(__name__)

QueryKind = Literal["scopes", "functions", "classes", "imports"]
QUERY_KINDS: tuple[QueryKind, ...] = ("scopes", "functions", "classes", "imports")


def query_source(info: LanguageInfo, kind: QueryKind) -> str | None:
    """The text of a query file, or None when the language has no queries of that kind."""
    if info.queries is None:
        return None
    resource = grammars_dir().joinpath(info.queries, f"{kind}.scm")
    if not resource.is_file():
        return None
    return resource.read_text(encoding="utf-8")


@functools.cache
def _compile(info: LanguageInfo, kind: QueryKind) -> tree_sitter.Query | None:
    language = ts_language(info)
    source = query_source(info, kind)
    if language is None or source is None:
        return None
    try:
        return tree_sitter.Query(language, source)
    except tree_sitter.QueryError as exc:
        # Shipped queries are tested to compile; a newer grammar wheel can still rename a node.
        log.warning("query %s/%s.scm does not compile for %s: %s", info.queries, kind, info.grammar, exc)
        return None


def query_for(info: LanguageInfo, kind: QueryKind) -> tree_sitter.Query | None:
    """The compiled query (cached per language and kind), or None if unavailable."""
    if info.grammar is None or info.queries is None:
        return None
    return _compile(info, kind)


def run_matches(
    query: tree_sitter.Query,
    node: tree_sitter.Node,
    byte_range: tuple[int, int] | None = None,
    max_start_depth: int | None = None,
) -> list[dict[str, list[tree_sitter.Node]]]:
    """All matches of `query` under `node`.

    `byte_range` keeps those intersecting it; `max_start_depth` those whose top node is at most
    that deep below `node` (1: its children), which keeps whole-file look-ups cheap.
    """
    cursor = tree_sitter.QueryCursor(query)
    if byte_range is not None:
        cursor.set_byte_range(*byte_range)
    if max_start_depth is not None:
        cursor.set_max_start_depth(max_start_depth)
    return [captures for _, captures in cursor.matches(node)]
