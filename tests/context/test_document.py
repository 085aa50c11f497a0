"""Documents: didChange edits keep text and tree equal to a fresh parse, in every encoding."""

from __future__ import annotations

import logging
import random

import pytest
import tree_sitter

from codegeex_lsp.context.document import ContentChange, Document, TreeEdit, path_from_uri, tree_edit
from codegeex_lsp.context.languages import language_for, parser_for
from codegeex_lsp.context.positions import ENCODINGS, LineIndex, Position, Range, count_units, point_of_byte

from .helpers import make_doc, ref_offset

P = Position

SEEDS = {
    "python": "def f(x):\n    return x + 1  # 注释 😀\r\nclass A:\r    pass\n",
    "typescript": "function f(a: number): string {\n  return `${a} 中文`; // 😀\n}\r\nclass B {}\n",
    "rust": "fn main() {\n    let s = \"é😀\";\r\n    println!(\"{}\", s);\n}\n",
}
INSERTS = ["x", "😀", "中文", "\n", "\r\n", "\r", "(", ")", "{", "}", "def g():\n  ", " ", "'", '"',
           "é", "𝄞 ", "fn h() {}\n", "\t", "return 1;", "/*", "*/", "#", "//"]


def tree_signature(tree: tree_sitter.Tree) -> list[tuple[object, ...]]:
    """Every node in document order with its type, field, byte range, points and flags."""
    signature = []
    cursor = tree.walk()
    depth = 0
    while True:
        node = cursor.node
        assert node is not None
        signature.append((depth, node.type, cursor.field_name, node.start_byte, node.end_byte,
                          tuple(node.start_point), tuple(node.end_point), node.is_missing,
                          node.is_error, node.is_named))
        if cursor.goto_first_child():
            depth += 1
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return signature
            depth -= 1


def assert_same_as_fresh(doc: Document, language_id: str) -> None:
    fresh = Document(doc.uri, doc.text, language_id)
    assert doc.data == doc.text.encode("utf-8")
    fresh_lines = LineIndex.build(doc.text)  # the spliced index equals a fresh one
    for name in ("starts", "ends", "starts_byte", "ends_byte"):
        assert list(getattr(doc.lines, name)) == list(getattr(fresh_lines, name)), name
    assert doc.tree is not None and fresh.tree is not None
    assert str(doc.tree.root_node) == str(fresh.tree.root_node)
    assert tree_signature(doc.tree) == tree_signature(fresh.tree)


def random_position(rng: random.Random, doc: Document) -> Position:
    """Mostly valid positions, sometimes past the line end or the last line (clamped)."""
    line = rng.randrange(doc.lines.n_lines + 1)
    width = count_units(doc.lines.line_text(line), doc.encoding)
    return P(line, rng.randrange(width + 3))


def apply_reference(text: str, change: ContentChange, encoding: str) -> str:
    if change.range is None:
        return change.text
    start = ref_offset(text, change.range.start, encoding)
    end = ref_offset(text, change.range.end, encoding)
    start, end = min(start, end), max(start, end)
    return text[:start] + change.text + text[end:]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("language_id", sorted(SEEDS))
def test_random_incremental_edits_match_fresh_parse(language_id: str, encoding: str) -> None:
    rng = random.Random(f"{language_id}-{encoding}")
    for _ in range(8):
        doc = make_doc(SEEDS[language_id], language_id, encoding=encoding)
        expected = doc.text
        for step in range(25):
            changes = []
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                a, b = random_position(rng, doc), random_position(rng, doc)
                text = "".join(rng.choice(INSERTS) for _ in range(rng.randrange(0, 3)))
                changes.append(ContentChange(text, Range(min(a, b), max(a, b))))
            # Positions of later changes in one notification refer to the text after the earlier
            # ones: that is what the reference applies, so generate them against the live text.
            for change in changes:
                expected = apply_reference(expected, change, encoding)
                doc.apply_change(change)
            assert doc.text == expected
            assert_same_as_fresh(doc, language_id)
            if step % 10 == 9:
                reset = ContentChange(SEEDS[language_id])
                doc.apply_changes([reset, ContentChange("x", Range(P(0, 0), P(0, 0)))])
                expected = "x" + SEEDS[language_id]
                assert doc.text == expected
                assert_same_as_fresh(doc, language_id)


def test_several_changes_in_one_notification_reparse_once() -> None:
    doc = make_doc("def f():\n    return 1\n", "python")
    doc.apply_changes([
        ContentChange("value", Range(P(1, 11), P(1, 12))),
        ContentChange("g", Range(P(0, 4), P(0, 5))),
        ContentChange("\n\ndef h(): pass\n", Range(P(2, 0), P(2, 0))),
    ], version=7)
    assert doc.text == "def g():\n    return value\n\n\ndef h(): pass\n"
    assert doc.version == 7
    assert_same_as_fresh(doc, "python")


def test_emoji_and_cjk_edits_in_each_encoding() -> None:
    base = "s = '中😀x'\n"
    # Replace the "x" after the emoji; its column differs per encoding.
    columns = {"utf-8": (12, 13), "utf-16": (8, 9), "utf-32": (7, 8)}
    for encoding, (start, end) in columns.items():
        doc = make_doc(base, "python", encoding=encoding)  # type: ignore[arg-type]
        doc.apply_change(ContentChange("文", Range(P(0, start), P(0, end))))
        assert doc.text == "s = '中😀文'\n", encoding
        assert_same_as_fresh(doc, "python")


def test_crlf_and_lone_cr_edits() -> None:
    doc = make_doc("a = 1\r\nb = 2\rc = 3\n", "python")
    doc.apply_change(ContentChange("X", Range(P(1, 0), P(1, 1))))  # line 1 starts after \r\n
    doc.apply_change(ContentChange("Y", Range(P(2, 0), P(2, 1))))  # line 2 starts after lone \r
    assert doc.text == "a = 1\r\nX = 2\rY = 3\n"
    doc.apply_change(ContentChange("", Range(P(0, 5), P(1, 0))))  # delete the whole \r\n
    assert doc.text == "a = 1X = 2\rY = 3\n"
    doc.apply_change(ContentChange("\n", Range(P(0, 99), P(0, 99))))  # past the end: line end
    assert doc.text == "a = 1X = 2\n\rY = 3\n"
    assert_same_as_fresh(doc, "python")


def test_edit_past_the_last_line_appends() -> None:
    doc = make_doc("x = 1", "python")
    doc.apply_change(ContentChange("\ny = 2", Range(P(9, 0), P(9, 0))))
    assert doc.text == "x = 1\ny = 2"
    assert_same_as_fresh(doc, "python")


def test_old_trees_are_never_mutated() -> None:
    doc = make_doc("def f():\n    return 1\n", "python")
    old = doc.tree
    assert old is not None
    before = (str(old.root_node), tree_signature(old))
    doc.apply_change(ContentChange("x = 0\n", Range(P(0, 0), P(0, 0))))
    assert doc.tree is not old
    assert (str(old.root_node), tree_signature(old)) == before


def test_revision_changes_with_each_change() -> None:
    doc = make_doc("a", "python")
    seen = {doc.revision}
    for _ in range(3):
        doc.apply_change(ContentChange("b", Range(P(0, 0), P(0, 0))))
        seen.add(doc.revision)
    assert len(seen) == 4


@pytest.mark.parametrize(("encoding", "character"), [("utf-16", 3), ("utf-8", 5), ("utf-32", 2)])
def test_cursor_split(encoding: str, character: int) -> None:
    doc = make_doc("x😀y\r\nz", "plaintext", encoding=encoding)
    assert doc.cursor_split(P(0, character)) == ("x😀", "y\r\nz")
    assert doc.cursor_split(P(0, 99)) == ("x😀y", "\r\nz")
    assert doc.cursor_split(P(7, 0)) == ("x😀y\r\nz", "")
    assert doc.position_at(doc.offset_at(P(1, 1))) == P(1, 1)
    assert doc.position_at_byte(doc.byte_offset_at(P(0, character))) == P(0, character)


def test_lone_surrogates_from_the_client_are_replaced() -> None:
    doc = make_doc("a\ud800b", "python")
    assert doc.text == "a\ufffdb"
    doc.apply_change(ContentChange("\udc00", Range(P(0, 3), P(0, 3))))
    assert doc.text == "a\ufffdb\ufffd"
    assert_same_as_fresh(doc, "python")


@pytest.mark.parametrize("language_id", ["python", "javascript", "c", "rust", "go", "java"])
def test_binary_junk_parses_without_crashing(language_id: str) -> None:
    rng = random.Random(language_id)
    junk = bytes(rng.randrange(256) for _ in range(3000)).decode("utf-8", errors="surrogateescape")
    text = junk + "\x00\x00 def {(\x01\x7f" + "\ud83d"
    doc = make_doc(text, language_id)
    assert doc.tree is not None
    assert doc.tree.root_node.end_byte == len(doc.data)
    assert "\x00" in doc.text
    for _ in range(20):
        a, b = random_position(rng, doc), random_position(rng, doc)
        doc.apply_change(ContentChange(rng.choice(["\x00", "\udfff", "😀", ""]), Range(min(a, b), max(a, b))))
    assert_same_as_fresh(doc, language_id)


def test_unknown_language_is_plaintext_without_tree(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="codegeex_lsp.context.languages"):
        doc = Document("untitled:Untitled-1", "some text", "klingon-script-xyz")
    assert doc.language.language_id == "plaintext"
    assert doc.tree is None
    assert any("klingon-script-xyz" in r.getMessage() for r in caplog.records)
    doc.apply_change(ContentChange("more ", Range(P(0, 5), P(0, 5))))
    assert doc.text == "some more text"
    assert doc.path == "untitled:Untitled-1"


def test_language_from_the_uri_extension() -> None:
    doc = Document("file:///src/app/main.rs", "fn main() {}\n", None)
    assert doc.language.language_id == "rust"
    assert doc.tree is not None and doc.tree.root_node.type == "source_file"


def test_path_from_uri() -> None:
    assert path_from_uri("file:///home/u/a%20b.py") == "/home/u/a b.py"
    assert path_from_uri("file:///c%3A/src/x.py") == "c:/src/x.py"
    assert path_from_uri("untitled:1") == "untitled:1"


def test_tree_edit_points_follow_tree_sitter_rows() -> None:
    old = "a\r\nb\rc中\nd".encode()
    # Replace "c中" (bytes 5..9, after a lone \r: still row 1 for tree-sitter) with "\n\n😀".
    new = old[:5] + "\n\n😀".encode() + old[9:]
    assert tree_edit(old, new, 5, 9) == TreeEdit(
        start_byte=5, old_end_byte=9, new_end_byte=11,
        start_point=(1, 2), old_end_point=(1, 6), new_end_point=(3, 4),
    )


def test_edited_tree_nodes_after_the_edit_sit_at_their_new_points() -> None:
    rng = random.Random("edited-tree")
    parser = parser_for(language_for("python"))
    assert parser is not None
    data = SEEDS["python"].encode() * 3
    tree = parser.parse(data)
    for _ in range(200):
        start = rng.randrange(len(data) + 1)
        end = min(start + rng.randrange(6), len(data))
        new = data[:start] + rng.choice(INSERTS).encode() + data[end:]
        edit = tree_edit(data, new, start, end)
        edited = tree.copy()
        edit.apply(edited)
        for node in edited.root_node.children:
            if node.start_byte >= edit.new_end_byte:
                assert tuple(node.start_point) == point_of_byte(new, node.start_byte)
                assert tuple(node.end_point) == point_of_byte(new, node.end_byte)
        data, tree = new, parser.parse(new, edited)


def test_edits_parse_lazily_once_per_read() -> None:
    doc = make_doc("def f():\n    return 1\n", "python")
    parses = 0
    parse = doc._parse

    def counting(old):
        nonlocal parses
        parses += 1
        return parse(old)

    doc._parse = counting  # type: ignore[method-assign]
    for i in range(5):
        doc.apply_change(ContentChange("x", Range(P(1, 10 + i), P(1, 10 + i))))
    assert parses == 0
    assert doc.tree is not None and doc.tree is doc.tree
    assert parses == 1
    assert_same_as_fresh(doc, "python")
