"""Scope decisions (NONE/LINE/BLOCK) from the golden table, and enclosing-scope ranges."""

from __future__ import annotations

import tomllib
from collections import defaultdict

import pytest

from codegeex_lsp.context.scope import analyze_cursor, mode_when_invoked

from .helpers import HERE, make_doc, split_cursor

CASES = tomllib.loads((HERE / "scope_cases.toml").read_text(encoding="utf-8"))["case"]
REQUIRED = ["python", "javascript", "typescript", "java", "c", "cpp", "go", "rust"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_scope_case(case: dict[str, str]) -> None:
    text, cursor = split_cursor(case["code"])
    doc = make_doc(text, case["language"])
    result = analyze_cursor(doc, cursor)
    assert result.mode == case["mode"], result
    if "reason" in case:
        assert result.reason == case["reason"], result
    if "scope" in case:
        assert (result.scope.name if result.scope else "") == case["scope"], result
    if "kind" in case:
        assert result.scope is not None and result.scope.kind == case["kind"], result


def test_table_covers_every_mode_for_every_required_language() -> None:
    modes: dict[str, set[str]] = defaultdict(set)
    for case in CASES:
        modes[case["language"]].add(case["mode"])
    for language_id in REQUIRED:
        assert modes[language_id] == {"NONE", "LINE", "BLOCK"}, language_id


def test_scope_ranges_and_chain() -> None:
    text, cursor = split_cursor(
        "import os\n\nclass Shape:\n    def area(self):\n        x = █\n        return x\n\nprint(1)\n"
    )
    result = analyze_cursor(make_doc(text, "python"), cursor)
    assert [(s.kind, s.name) for s in result.scopes] == [("function", "area"), ("class", "Shape")]
    method, cls = result.scopes
    assert (method.start_line, method.end_line, method.indent) == (3, 5, "    ")
    assert (cls.start_line, cls.end_line, cls.indent) == (2, 5, "")
    assert text.encode()[method.start_byte : method.end_byte].decode().startswith("def area")
    assert result.enclosing("class") is cls
    assert result.enclosing("function") is method


def test_brace_scope_range_reaches_the_closing_brace() -> None:
    text, cursor = split_cursor("int f(int a) {\n  if (a) {\n    █\n  }\n  return a;\n}\nint g;\n")
    result = analyze_cursor(make_doc(text, "c"), cursor)
    assert result.mode == "BLOCK"
    assert result.scope is not None
    assert (result.scope.name, result.scope.start_line, result.scope.end_line) == ("f", 0, 5)
    assert text.encode()[result.scope.end_byte - 1 : result.scope.end_byte] == b"}"


def test_cursor_inside_a_code_point_snaps_back() -> None:
    doc = make_doc("x = '中'\n", "python")
    inside = len(b"x = '") + 1
    assert analyze_cursor(doc, inside).cursor_byte == inside - 1


def test_comment_and_string_flags() -> None:
    text, cursor = split_cursor("# note █\nx = 1\n")
    result = analyze_cursor(make_doc(text, "python"), cursor)
    assert (result.in_comment, result.in_string, result.mode) == (True, False, "LINE")
    text, cursor = split_cursor("x = 'ab█'\n")
    result = analyze_cursor(make_doc(text, "python"), cursor)
    assert (result.in_comment, result.in_string, result.mode) == (False, True, "LINE")
    text, cursor = split_cursor("x = 'ab'█\n")
    result = analyze_cursor(make_doc(text, "python"), cursor)
    assert (result.in_comment, result.in_string) == (False, False)


def test_an_explicit_request_at_the_indentation_of_code_asks_for_lines_above_it() -> None:
    # Where an automatic trigger gets NONE (`    █return x`), an invoked one gets lines that go
    # above the code: one LINE there would run into it (`    y = 1    return x`).
    assert mode_when_invoked("def f(x):\n    ", "return x\n") == "BLOCK"
    assert mode_when_invoked("def f(x):\n", "    return x\n") == "BLOCK"
    assert mode_when_invoked("def f(value):\n    return val", "ue\n") == "LINE"
    assert mode_when_invoked("f(a", ", b)\n") == "LINE"
