"""What to ask the model for at a cursor (NONE / LINE / BLOCK), and the scopes around it.

Decided from the text and the syntax tree before any model call, in this order:

1. NONE when the rest of the cursor's line holds anything but whitespace, closing brackets,
   quotes, `;`, `,`, `:`, `{` and `*/` (the test `_MID_LINE_OK`): the cursor is in the middle of a
   word or of a statement whose tail the model would have to reproduce: `fo█o`, `█return x`,
   `f(a█, b)`. `f(█)`, `"█"`, `x = █;`, `puts("█"); }`, `if (█) {` and an empty rest pass.
2. LINE inside a comment or a string: completing prose there is often wanted (docstrings, TODOs),
   but never more than the current line.
3. BLOCK when the cursor sits in an empty body just opened by a header: the last code before the
   cursor is the opener (`:` for indent languages, `{` for brace languages) of a node the
   language's `scopes.scm` captures as `@block`, and nothing but whitespace (brace languages: up
   to a `}`) or dedented code (indent languages) follows: `def f(x):\\n    █`, `{ █ }`.
4. BLOCK on a blank line with nothing but whitespace after it to the end of the document: no
   following code can clash with several new lines.
5. BLOCK when only indentation precedes the cursor and closing tokens follow it (`    █}`): a
   suggestion there is whole lines that go above that code, which post-processing keeps on lines
   of their own (`cut_suffix_overlap`, `trim_space`); a single LINE would join the `}`.
6. LINE otherwise (middle of a statement, a blank line between statements).

An explicit request (the editor's invoked trigger) where rule 1 says NONE gets
`mode_when_invoked`: BLOCK at the indentation of a line of code (`    █return x`, rule 5's case
with any code after), LINE elsewhere.

The enclosing scopes (functions, classes; innermost first) are found with the same queries. The
prompt stage extends the suffix at least to the end of the enclosing function; post-processing
stops a block at its end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import tree_sitter

from codegeex_lsp.context.document import Document
from codegeex_lsp.context.queries import query_for, run_matches
from codegeex_lsp.prompt.types import ScopeInfo, ScopeKind

Mode = Literal["NONE", "LINE", "BLOCK"]

_MID_LINE_OK = re.compile(r"""(?:[\s)\]}>"'`;,:{]|\*/)*""")
_WHITESPACE = b" \t\r\n\f\v"
_CLOSING_TOKENS = frozenset({"}", ")", "]", ";", "end"})
_OPENERS = {"indent": b":", "braces": b"{"}
_SPACES = re.compile(r"\s*")
_MAX_COMMENT_SKIPS = 1000


@dataclass(frozen=True)
class CursorContext:
    """The scope stage's decision for one cursor; `reason` is a short tag for logs and tests."""

    mode: Mode
    reason: str
    cursor_byte: int
    in_comment: bool = False
    in_string: bool = False
    scopes: tuple[ScopeInfo, ...] = ()

    @property
    def scope(self) -> ScopeInfo | None:
        """The innermost enclosing scope, if any."""
        return self.scopes[0] if self.scopes else None

    def enclosing(self, kind: ScopeKind) -> ScopeInfo | None:
        """The innermost enclosing scope of `kind`, if any."""
        return next((s for s in self.scopes if s.kind == kind), None)


def _indent_width(line: str) -> int:
    stripped = line[: len(line) - len(line.lstrip())]
    return len(stripped.expandtabs(8))


def _scope_matches(doc: Document, start: int, end: int) -> list[dict[str, list[tree_sitter.Node]]]:
    query = query_for(doc.language, "scopes")
    if query is None or doc.tree is None:
        return []
    return run_matches(query, doc.tree.root_node, (start, end))


def _comment_before(doc: Document, pos: int) -> int | None:
    """Start of the comment holding byte pos-1, or None (tree captures, else line comments)."""
    if doc.tree is not None and query_for(doc.language, "scopes") is not None:
        for match in _scope_matches(doc, pos - 1, pos):
            for node in match.get("comment", ()):
                if node.start_byte < pos <= node.end_byte:
                    return node.start_byte
        return None
    token = doc.language.line_comment
    if token is None:
        return None
    line = doc.lines.line_of_byte(pos - 1)
    if doc.lines.line_text(line).lstrip().startswith(token):
        return doc.lines.starts_byte[line]
    return None


def last_code_byte(doc: Document, cursor_byte: int) -> int:
    """End of the last code before the cursor, skipping whitespace and comments (0: none)."""
    data = doc.data
    pos = cursor_byte
    for _ in range(_MAX_COMMENT_SKIPS):
        while pos > 0 and data[pos - 1] in _WHITESPACE:
            pos -= 1
        if pos == 0:
            return 0
        comment_start = _comment_before(doc, pos)
        if comment_start is None:
            return pos
        pos = comment_start
    return pos


def _regions_at(doc: Document, cursor_byte: int) -> tuple[bool, bool]:
    """(in_comment, in_string). A line comment ending at the cursor still holds it."""
    if cursor_byte == 0:
        return False, False
    in_comment = in_string = False
    line_comment = doc.language.line_comment
    for match in _scope_matches(doc, cursor_byte - 1, cursor_byte):
        for node in match.get("comment", ()):
            inside = node.start_byte < cursor_byte < node.end_byte
            at_end_of_line_comment = (
                cursor_byte == node.end_byte
                and line_comment is not None
                and doc.data.startswith(line_comment.encode(), node.start_byte)
            )
            in_comment |= inside or at_end_of_line_comment
        for node in match.get("string", ()):
            in_string |= node.start_byte < cursor_byte < node.end_byte
    return in_comment, in_string


def _block_node_ids(doc: Document, start: int, end: int) -> set[int]:
    return {node.id for match in _scope_matches(doc, start, end) for node in match.get("block", ())}


def _header_line(doc: Document, anchor: int) -> int:
    """The first line of the statement whose opener ends at `anchor`."""
    if doc.tree is not None:
        leaf = doc.tree.root_node.descendant_for_byte_range(anchor - 1, anchor)
        if leaf is not None and leaf.parent is not None:
            return doc.lines.line_of_byte(leaf.parent.start_byte)
    return doc.lines.line_of_byte(anchor - 1)


def _opens_block(doc: Document, anchor: int) -> bool:
    """Whether the byte before `anchor` is a syntactic block opener (not one in a string)."""
    style = doc.language.block_style
    if style is None or anchor == 0 or doc.data[anchor - 1 : anchor] != _OPENERS[style]:
        return False
    if doc.tree is None or query_for(doc.language, "scopes") is None:
        return True
    leaf = doc.tree.root_node.descendant_for_byte_range(anchor - 1, anchor)
    if leaf is None or leaf.start_byte != anchor - 1 or leaf.end_byte != anchor:
        return False
    parent = leaf.parent
    if parent is None:
        return False
    # Not `leaf.next_sibling`: tree-sitter skips the zero-width empty Python block there; and a
    # trailing comment (`if x:  # why`) sits between the opener and the block.
    siblings = parent.children
    index = next((i for i, child in enumerate(siblings) if child.id == leaf.id), len(siblings))
    following = next((child for child in siblings[index + 1 :] if not child.is_extra), None)
    reach = following.start_byte + 1 if following is not None else anchor + 1
    blocks = _block_node_ids(doc, anchor - 1, max(reach, anchor + 1))
    return parent.id in blocks or (following is not None and following.id in blocks)


def _is_empty_body(doc: Document, cursor_byte: int, anchor: int, line_after: str) -> bool:
    if not _opens_block(doc, anchor):
        return False
    lines = doc.lines
    cursor_char = lines.byte_to_char(cursor_byte)
    if doc.language.block_style == "braces":
        rest = _SPACES.match(doc.text, cursor_char).end()
        return rest == len(doc.text) or doc.text[rest] == "}"
    cursor_line = lines.line_of(cursor_char)
    if cursor_line == lines.line_of_byte(anchor - 1) or line_after.strip():
        return False
    header_indent = _indent_width(lines.line_text(_header_line(doc, anchor)))
    comment = doc.language.line_comment
    for line in range(cursor_line + 1, lines.n_lines):
        text = lines.line_text(line)
        stripped = text.strip()
        if not stripped or (comment is not None and stripped.startswith(comment)):
            continue
        return _indent_width(text) <= header_indent
    return True


def _is_closed(node: tree_sitter.Node) -> bool:
    """Whether a brace-language node ends with a real closing token (not a missing one)."""
    last = node
    while last.child_count:
        last = last.children[-1]
    return not last.is_missing and last.type in _CLOSING_TOKENS


def _scope_info(doc: Document, kind: ScopeKind, node: tree_sitter.Node, name: str | None) -> ScopeInfo:
    start_line = doc.lines.line_of_byte(node.start_byte)
    first = doc.lines.line_text(start_line)
    return ScopeInfo(
        kind=kind,
        node_type=node.type,
        name=name,
        start_byte=node.start_byte,
        end_byte=node.end_byte,
        start_line=start_line,
        end_line=doc.lines.line_of_byte(max(node.end_byte - 1, node.start_byte)),
        indent=first[: len(first) - len(first.lstrip())],
    )


def enclosing_scopes(
    doc: Document, cursor_byte: int, anchor: int, *, in_empty_body: bool = False
) -> tuple[ScopeInfo, ...]:
    """Functions and classes holding the cursor, innermost first.

    A scope holds the cursor when it holds `anchor` (the end of the last code before the cursor).
    If the scope ends right at `anchor`, the cursor is past its last code: an indent-language scope
    still holds a cursor indented deeper than its first line; a brace-language scope holds it
    unless it ends with a real closing token.
    """
    if anchor == 0:
        return ()
    found: dict[int, tuple[ScopeKind, tree_sitter.Node, str | None]] = {}
    for match in _scope_matches(doc, anchor - 1, anchor):
        names = match.get("name", ())
        name = names[0].text.decode("utf-8", errors="replace") if names and names[0].text else None
        for kind in ("function", "class"):
            for node in match.get(f"scope.{kind}", ()):
                if node.id not in found or found[node.id][2] is None:
                    found[node.id] = (kind, node, name)
    lines = doc.lines
    cursor_line = lines.line_of_byte(cursor_byte)
    cursor_indent = _indent_width(lines.line_text(cursor_line)[: max(
        lines.byte_to_char(cursor_byte) - lines.starts[cursor_line], 0)])
    scopes = []
    for kind, node, name in found.values():
        if not node.start_byte < anchor <= node.end_byte:
            continue
        if anchor == node.end_byte:
            if doc.language.block_style == "indent":
                header_indent = _indent_width(lines.line_text(lines.line_of_byte(node.start_byte)))
                same_line = lines.line_of_byte(anchor - 1) == cursor_line
                if not (same_line or in_empty_body or cursor_indent > header_indent):
                    continue
            elif _is_closed(node):
                continue
        scopes.append(_scope_info(doc, kind, node, name))
    scopes.sort(key=lambda s: (s.end_byte - s.start_byte, -s.start_byte))
    return tuple(scopes)


def analyze_cursor(doc: Document, cursor_byte: int) -> CursorContext:
    """Decide NONE/LINE/BLOCK at a UTF-8 byte offset and find the scopes around it."""
    cursor_byte = doc.lines.char_to_byte(doc.lines.byte_to_char(min(max(cursor_byte, 0), len(doc.data))))
    lines = doc.lines
    cursor_char = lines.byte_to_char(cursor_byte)
    line = lines.line_of(cursor_char)
    line_before = doc.text[lines.starts[line] : cursor_char]
    line_after = doc.text[cursor_char : lines.ends[line]]
    anchor = last_code_byte(doc, cursor_byte)
    in_comment, in_string = _regions_at(doc, cursor_byte)

    def decide(mode: Mode, reason: str, *, in_empty_body: bool = False) -> CursorContext:
        scopes = enclosing_scopes(doc, cursor_byte, anchor, in_empty_body=in_empty_body)
        return CursorContext(mode, reason, cursor_byte, in_comment, in_string, scopes)

    if not _MID_LINE_OK.fullmatch(line_after):
        return decide("NONE", "mid-line")
    if in_comment:
        return decide("LINE", "comment")
    if in_string:
        return decide("LINE", "string")
    if _is_empty_body(doc, cursor_byte, anchor, line_after):
        return decide("BLOCK", "empty-body", in_empty_body=True)
    if not line_before.strip() and _SPACES.match(doc.text, cursor_char).end() == len(doc.text):
        return decide("BLOCK", "end-of-document")
    if cursor_before_code(line_before, line_after):
        return decide("BLOCK", "above-code")
    return decide("LINE", "statement")


def cursor_before_code(prefix: str, suffix: str) -> bool:
    """Only indentation before the cursor on its line and code after it: a suggestion that breaks
    the line puts its lines above that code. One predicate for the mode decided here and for the
    post-processing rules that keep those lines on their own (`cut_suffix_overlap`, `trim_space`)."""
    line_before = prefix[prefix.rfind("\n") + 1 :]
    line_after = suffix.split("\n", 1)[0]
    return not line_before.strip() and bool(line_after.strip())


def mode_when_invoked(prefix: str, suffix: str) -> Mode:
    """The mode of an explicit request where `analyze_cursor` said NONE: lines above the code when
    only indentation precedes the cursor, else the rest of the current line."""
    return "BLOCK" if cursor_before_code(prefix, suffix) else "LINE"
