"""Cross-file context: definitions in other open documents of the names used near the cursor.

The editor's open documents are the cheapest good guess at what the user is working with. For each
identifier within `n_lines` of the cursor (nearest first), definitions with that exact name are
looked up in the other open documents with their `functions`/`classes` queries, ranked and packed
into a character budget as `Reference(path, text)` snippets for the prompt stage.

Ranking, best first: nearer identifier; a document the current one imports (its file stem named
in an import statement); same language; classes before functions; then path and position, so
the result is deterministic.
"""

from __future__ import annotations

import bisect
import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

import tree_sitter

from codegeex_lsp.context.document import Document, Splice
from codegeex_lsp.context.queries import query_for, run_matches
from codegeex_lsp.prompt.types import Reference

DefinitionKind = Literal["function", "class"]

_WORD = re.compile(r"[^\W\d]\w*")
_KIND_ORDER = {"class": 0, "function": 1}
_IMPORT_DEPTH = 2
_definition_cache: weakref.WeakKeyDictionary[Document, tuple[int, tuple[Definition, ...]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class Definition:
    """A function or class defined in a document; `text` is its whole lines, indentation kept."""

    name: str
    kind: DefinitionKind
    path: str
    language_id: str
    start_byte: int
    end_byte: int
    start_line: int
    end_line: int
    text: str


def reference_chars(reference: Reference) -> int:
    """What a reference costs against the budget: its path header and its text."""
    return len(reference.path) + len(reference.text)


def _node_text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", errors="replace")


def find_definitions(doc: Document) -> tuple[Definition, ...]:
    """All functions and classes of `doc`, cached per document and brought up to date lazily.

    After edits, only the top-level nodes the edits touched are queried again; the other
    definitions are kept and shifted (`_update`). A full re-extraction happens only for a new text
    or when more edits piled up than the document remembers.
    """
    cached = _definition_cache.get(doc)
    if cached is not None and cached[0] == doc.revision:
        return cached[1]
    tree = doc.tree  # parse first: the re-parse records where the structure changed
    splices = doc.splices_since(cached[0]) if cached is not None else None
    if cached is None or splices is None or tree is None:
        result = tuple(_extract(doc))
    else:
        result = _update(doc, cached[1], splices)
    _definition_cache[doc] = (doc.revision, result)
    return result


def _extract(doc: Document, byte_range: tuple[int, int] | None = None) -> list[Definition]:
    """Definitions whose node starts in `byte_range` (all of them without one), by start."""
    definitions: list[Definition] = []
    if doc.tree is None:
        return definitions
    seen: set[int] = set()
    for kind in ("class", "function"):
        query = query_for(doc.language, "classes" if kind == "class" else "functions")
        if query is None:
            continue
        for match in run_matches(query, doc.tree.root_node, byte_range):
            nodes, names = match.get(f"definition.{kind}"), match.get("name")
            if not nodes or not names or nodes[0].id in seen:
                continue
            node = nodes[0]
            if byte_range is not None and not byte_range[0] <= node.start_byte < byte_range[1]:
                continue
            seen.add(node.id)
            start_line = doc.lines.line_of_byte(node.start_byte)
            end_line = doc.lines.line_of_byte(max(node.end_byte - 1, node.start_byte))
            text = doc.text[doc.lines.starts[start_line] : doc.lines.ends[end_line]]
            definitions.append(Definition(
                name=_node_text(names[0]), kind=kind, path=doc.path,
                language_id=doc.language.language_id, start_byte=node.start_byte,
                end_byte=node.end_byte, start_line=start_line, end_line=end_line, text=text,
            ))
    definitions.sort(key=lambda d: d.start_byte)
    return definitions


def _update(doc: Document, old: tuple[Definition, ...], splices: list[Splice]) -> tuple[Definition, ...]:
    """`old` carried through `splices`: untouched definitions shifted, touched regions re-queried."""
    kept = list(old)
    dirty: list[tuple[int, int]] = []
    for sp in splices:
        delta = sp.new_end_byte - sp.old_end_byte

        def moved(b: int, sp: Splice = sp, delta: int = delta, end: int = 0) -> int:
            if b <= sp.start_byte:
                return b
            return b + delta if b >= sp.old_end_byte else (sp.new_end_byte if end else sp.start_byte)

        dirty = [(moved(lo), moved(hi, end=1)) for lo, hi in dirty]
        dirty.append((sp.start_byte, sp.new_end_byte))
        dirty += doc.reparsed_ranges(sp.revision)  # after this splice, in its coordinates
        carried: list[Definition] = []
        for d in kept:
            # By lines, not bytes: a definition's text is its whole lines.
            if d.end_line < sp.start_line:
                carried.append(d)
            elif d.start_line > sp.old_end_line:  # positional: dataclasses.replace is 5x slower
                carried.append(Definition(
                    d.name, d.kind, d.path, d.language_id, d.start_byte + delta, d.end_byte + delta,
                    d.start_line + sp.line_delta, d.end_line + sp.line_delta, d.text,
                ))
            else:  # the edit touches it: its region is queried again
                dirty.append((moved(d.start_byte), moved(d.end_byte, end=1)))
        kept = carried
    regions = _top_level_regions(doc, dirty)
    fresh = [d for lo, hi in regions for d in _extract(doc, (lo, hi))]
    starts = [lo for lo, _ in regions]
    kept = [d for d in kept if not _in_regions(d.start_byte, starts, regions)]
    return tuple(sorted(kept + fresh, key=lambda d: d.start_byte))


def _in_regions(offset: int, starts: list[int], regions: list[tuple[int, int]]) -> bool:
    i = bisect.bisect_right(starts, offset) - 1
    return i >= 0 and offset < regions[i][1]


def _top_level_regions(doc: Document, dirty: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The byte spans of the root's children that `dirty` ranges touch (plus a neighbour each side,
    which an edit at a boundary may have joined), merged."""
    assert doc.tree is not None
    # One list of the top-level nodes (not prev_sibling, which crashes tree-sitter 0.26 at times).
    children = doc.tree.root_node.children
    ends = [child.end_byte for child in children]
    size = len(doc.data)
    spans: list[tuple[int, int]] = []
    for lo, hi in dirty:
        lo, hi = min(max(lo, 0), size), min(max(hi, 0), size)
        first = max(bisect.bisect_right(ends, lo) - 1, 0)  # the child before the first one ending after lo
        last = min(bisect.bisect_right(ends, hi) + 1, len(children) - 1)
        if not children:
            spans.append((lo, hi + 1))
            continue
        spans.append((min(children[first].start_byte, lo), max(children[last].end_byte, hi + 1)))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _identifier_leaves(node: tree_sitter.Node, lo: int, hi: int) -> Iterable[tree_sitter.Node]:
    """Identifier tokens starting in [lo, hi]; only the children overlapping it are visited."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.child_count == 0:
            # A MISSING identifier (error recovery) is zero-width: no name to look up.
            nonempty = current.start_byte < current.end_byte
            if current.type.endswith("identifier") and nonempty and lo <= current.start_byte <= hi:
                yield current
            continue
        child = current.first_child_for_byte(lo)
        while child is not None and child.start_byte <= hi:
            stack.append(child)
            child = child.next_sibling


def identifiers_near(doc: Document, cursor_byte: int, n_lines: int = 30, limit: int = 64) -> tuple[str, ...]:
    """Distinct identifiers within `n_lines` of the cursor, nearest first.

    With a tree only identifier tokens count (not words in strings, comments or keywords);
    without one, every word does.
    """
    lines = doc.lines
    line = lines.line_of_byte(cursor_byte)
    first, last = max(line - n_lines, 0), min(line + n_lines, lines.n_lines - 1)
    distances: dict[str, int] = {}
    if doc.tree is not None:
        lo, hi = lines.starts_byte[first], lines.ends_byte[last]
        for leaf in _identifier_leaves(doc.tree.root_node, lo, hi):
            name = _node_text(leaf)
            distance = abs(leaf.start_byte - cursor_byte)
            if distance < distances.get(name, distance + 1):
                distances[name] = distance
    else:
        cursor = lines.byte_to_char(cursor_byte)
        for match in _WORD.finditer(doc.text, lines.starts[first], lines.ends[last]):
            distance = abs(match.start() - cursor)
            if distance < distances.get(match.group(), distance + 1):
                distances[match.group()] = distance
    ranked = sorted(distances, key=lambda name: (distances[name], name))
    return tuple(ranked[:limit])


def _imported_stems(doc: Document) -> set[str]:
    """Words of the current document's import statements (file stems they may name).

    Runs on every request, so only imports near the top of the tree count (depth 2 still
    reaches a C include inside an `#ifdef`); nested imports are rare and only lose a boost.
    """
    query = query_for(doc.language, "imports")
    if query is None or doc.tree is None:
        return set()
    words: set[str] = set()
    for match in run_matches(query, doc.tree.root_node, max_start_depth=_IMPORT_DEPTH):
        for node in match.get("import", ()):
            words.update(_WORD.findall(_node_text(node)))
    return words


def display_path(path: str, root: str | None) -> str:
    """`path` relative to `root` when it lies under it, as prompts show paths."""
    if root:
        try:
            return PurePath(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return path


def _fit(text: str, max_lines: int, max_chars: int) -> str | None:
    """`text` cut to whole lines within both limits; None if not even its first line fits."""
    kept: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True)[:max_lines]:
        if used + len(line) > max_chars:
            break
        kept.append(line)
        used += len(line)
    return "".join(kept).rstrip("\r\n") or None


def find_references(
    doc: Document,
    cursor_byte: int,
    open_docs: Iterable[Document],
    *,
    n_lines: int = 30,
    max_chars: int = 2048,
    max_snippet_lines: int = 40,
    root: str | None = None,
) -> tuple[Reference, ...]:
    """Ranked definitions from other open documents of names near the cursor, within `max_chars`.

    The budget counts `reference_chars` of every returned reference. A definition longer than
    `max_snippet_lines`, or than the budget left, is cut to its first whole lines.
    """
    others = [other for other in open_docs if other is not doc and other.uri != doc.uri]
    if not others or max_chars <= 0:
        return ()
    names = identifiers_near(doc, cursor_byte, n_lines)
    rank = {name: i for i, name in enumerate(names)}
    imported = _imported_stems(doc)
    candidates: list[tuple[tuple[object, ...], Definition]] = []
    for other in others:
        is_imported = PurePath(other.path).stem in imported
        same_language = other.language.language_id == doc.language.language_id
        for definition in find_definitions(other):
            if definition.name not in rank:
                continue
            key = (rank[definition.name], not is_imported, not same_language,
                   _KIND_ORDER[definition.kind], definition.path, definition.start_byte)
            candidates.append((key, definition))
    candidates.sort(key=lambda item: item[0])
    references: list[Reference] = []
    left = max_chars
    for _, definition in candidates:
        path = display_path(definition.path, root)
        text = _fit(definition.text, max_snippet_lines, left - len(path))
        if text is None:
            continue
        reference = Reference(path=path, text=text)
        references.append(reference)
        left -= reference_chars(reference)
    return tuple(references)
