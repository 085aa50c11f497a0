"""Cross-file snippets: definitions from other open documents, ranked, within the budget."""

from __future__ import annotations

import random

import pytest

from codegeex_lsp.context.document import ContentChange, Document
from codegeex_lsp.context.positions import Position, Range
from codegeex_lsp.context.snippets import (
    _definition_cache,
    find_definitions,
    find_references,
    identifiers_near,
    reference_chars,
)
from codegeex_lsp.prompt.budget import estimate_tokens

from .helpers import make_doc, split_cursor

UTIL_PY = '''\
def helper(a, b):
    """Add two numbers."""
    return a + b


def unrelated():
    return 42


class Thing:
    def __init__(self):
        self.size = 1
'''
LONG_PY = "def big():\n" + "".join(f"    x{i} = {i}\n" for i in range(200)) + "    return 0\n"


def _main(marked: str, language_id: str = "python", name: str = "main.py"):
    text, cursor = split_cursor(marked)
    return make_doc(text, language_id, name=name), cursor


def test_definition_in_another_document_is_found() -> None:
    util = make_doc(UTIL_PY, "python", name="util.py")
    main, cursor = _main("def run():\n    total = helper(1, 2)\n    █\n")
    references = find_references(main, cursor, [main, util])
    assert [r.path for r in references] == ["/work-tests/util.py"]
    assert references[0].text == 'def helper(a, b):\n    """Add two numbers."""\n    return a + b'
    assert "unrelated" not in "".join(r.text for r in references)


def test_nearest_identifier_ranks_first_and_root_relativizes() -> None:
    util = make_doc(UTIL_PY, "python", name="pkg/util.py")
    main, cursor = _main("t = Thing()\n\n\n\nx = helper(1, █)\n")
    references = find_references(main, cursor, [util], root="/work-tests")
    assert [r.text.split("\n")[0] for r in references] == ["def helper(a, b):", "class Thing:"]
    assert {r.path for r in references} == {"pkg/util.py"}


def test_budget_is_respected_and_long_definitions_are_cut() -> None:
    long_doc = make_doc(LONG_PY, "python", name="long.py")
    util = make_doc(UTIL_PY, "python", name="util.py")
    main, cursor = _main("big()\nhelper(1, 2)\nThing()\n█\n")
    for budget in [0, 20, 60, 100, 300, 1000, 5000]:
        references = find_references(main, cursor, [long_doc, util], max_chars=budget, max_snippet_lines=30)
        assert sum(reference_chars(r) for r in references) <= budget
        for r in references:
            assert len(r.text.splitlines()) <= 30
    generous = find_references(main, cursor, [long_doc, util], max_chars=5000, max_snippet_lines=30)
    assert len(generous) == 3
    big = next(r for r in generous if r.text.startswith("def big"))
    assert big.text.splitlines() == LONG_PY.splitlines()[:30]


def test_current_document_is_not_a_reference() -> None:
    main, cursor = _main("def helper():\n    pass\n\nhelper()\n█\n")
    assert find_references(main, cursor, [main]) == ()


def test_only_identifiers_within_n_lines_count() -> None:
    util = make_doc(UTIL_PY, "python", name="util.py")
    main, cursor = _main("helper(1, 2)\n" + "pass\n" * 40 + "█\n")
    assert find_references(main, cursor, [util], n_lines=10) == ()
    assert len(find_references(main, cursor, [util], n_lines=60)) == 1


def test_identifiers_near_uses_tree_tokens_nearest_first() -> None:
    main, cursor = _main("# helper in a comment\nfar = 1\nnear = 'helper string'\nx = █\n")
    names = identifiers_near(main, cursor, n_lines=5)
    assert names[:2] == ("x", "near")
    assert "helper" not in names  # words in comments and strings are not identifiers


def test_imported_documents_rank_first() -> None:
    a = make_doc("def helper():\n    return 'a'\n", "python", name="alpha.py")
    b = make_doc("def helper():\n    return 'b'\n", "python", name="beta.py")
    main, cursor = _main("from beta import helper\n\nhelper()\n█\n")
    references = find_references(main, cursor, [a, b])
    assert [r.path for r in references] == ["/work-tests/beta.py", "/work-tests/alpha.py"]


def test_cross_language_and_grammarless_documents() -> None:
    header = make_doc("int add(int a, int b);\nstruct point { int x; };\n", "c", name="math.h")
    main, cursor = _main("int main(void) {\n  struct point p;\n  return add(1, 2);█\n}\n", "c", "main.c")
    texts = [r.text for r in find_references(main, cursor, [header])]
    assert texts == ["int add(int a, int b);", "struct point { int x; };"]  # `add` is nearer
    notes, cursor = _main("call helper here █\n", "plaintext", "notes.txt")
    util = make_doc(UTIL_PY, "python", name="util.py")
    assert [r.text.split("\n")[0] for r in find_references(notes, cursor, [util])] == ["def helper(a, b):"]


def test_definitions_cache_follows_edits() -> None:
    util = make_doc(UTIL_PY, "python", name="util.py")
    assert "helper" in {d.name for d in find_definitions(util)}
    util.apply_change(ContentChange("assist", Range(Position(0, 4), Position(0, 10))))
    names = {d.name for d in find_definitions(util)}
    assert "assist" in names and "helper" not in names


def test_estimate_tokens_errs_high() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 2


_INCREMENTAL_SEED = {
    "python": "import os\n\nclass A:\n    def f(self):\n        return 1\n\n    def g(self):\n        pass\n\n"
              "def top(x):\n    return x\n\n\ndef other():\n    return top(2)\n",
    "typescript": "class A {\n  f(): number { return 1; }\n  g() {}\n}\n\nfunction top(x: number) {\n"
                  "  return x;\n}\n\nfunction other() { return top(2); }\n",
}
_INCREMENTAL_INSERTS = ["x", "\n", "def h():\n    pass\n", "class B:\n  pass\n", "function q() {}\n", " ",
                        "(", ")", "{", "}", ":", "\r\n", "return 1\n", "    ", "#", "//", "'", "中"]


def _signature(definitions) -> list[tuple[object, ...]]:
    return [(d.name, d.kind, d.start_byte, d.end_byte, d.start_line, d.end_line, d.text) for d in definitions]


@pytest.mark.parametrize("language_id", sorted(_INCREMENTAL_SEED))
def test_definitions_follow_edits_like_a_fresh_extraction(language_id: str) -> None:
    rng = random.Random(f"defs-{language_id}")
    doc = Document(f"file:///w/m.{'py' if language_id == 'python' else 'ts'}", _INCREMENTAL_SEED[language_id],
                   language_id)
    find_definitions(doc)
    incremental = 0
    for step in range(120):
        for _ in range(rng.choice([1, 1, 2, 3])):
            line = rng.randrange(doc.lines.n_lines)
            width = len(doc.lines.line_text(line))
            a = Position(line, rng.randrange(width + 1))
            b = Position(min(line + rng.choice([0, 0, 1]), doc.lines.n_lines - 1), rng.randrange(width + 2))
            text = "".join(rng.choice(_INCREMENTAL_INSERTS) for _ in range(rng.randrange(0, 3)))
            doc.apply_change(ContentChange(text, Range(min(a, b), max(a, b))))
        if step % 3:  # several notifications between look-ups too
            continue
        incremental += doc.splices_since(_definition_cache[doc][0]) is not None
        got = find_definitions(doc)
        fresh = Document(doc.uri, doc.text, language_id)
        assert _signature(got) == _signature(find_definitions(fresh)), (step, doc.text)
    assert incremental > 30  # the incremental path was taken, not a rebuild each time
