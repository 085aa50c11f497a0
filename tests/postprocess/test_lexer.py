"""The helpers under the filters: string/comment scanning, bracket balance, edit distance."""

from __future__ import annotations

import pytest

from codegeex_lsp.context.languages import load_registry
from codegeex_lsp.postprocess._lexer import (
    imbalance,
    line_depths,
    lines_inside_block,
    lines_owing_closers,
    state_after,
)
from codegeex_lsp.postprocess._text import indent_cols, within_edit_distance


def test_state_after_a_prefix():
    assert state_after('def f():\n    """Doc', "python") == '"""'
    assert state_after('def f():\n    """Doc."""\n', "python") is None
    assert state_after("/* open", "c") == "/*"
    assert state_after("s = `multi\nline", "javascript") == "`"
    assert state_after('x = "unterminated\ny = 1', "python") is None
    assert state_after("# don't\nx = 1", "python") is None


def test_escaped_quotes_do_not_close():
    assert state_after(r'x = "a \" b', "python") == '"'
    assert state_after(r'x = "a \\" + b', "python") is None


def test_rust_lifetimes_are_code():
    assert imbalance("fn f<'a>(x: &'a str) -> &'a str {", "rust") == 1
    assert imbalance("let c = '{';", "rust") == 0


def test_brackets_in_strings_and_comments_do_not_count():
    assert imbalance("f(\"(\", '[') // {", "javascript") == 0
    assert imbalance("f(1  # )", "python") == 1


def test_line_depths_and_debts():
    text = "a(\n)\n)\nb"
    assert line_depths(text, "python") == [1, 0, -1, -1]
    assert lines_owing_closers(text, "python") == [False, False, True, True]
    assert lines_owing_closers('Doc.\n"""\nx', "python", '"""') == [False, True, True]


def test_lines_inside_block():
    text = 'x = """\nin\n"""\ny'
    assert lines_inside_block(text, "python") == [False, True, True, False]
    assert lines_inside_block("in\n*/\nx", "c", "/*") == [True, True, False]


def test_indentation_counts_tabs_to_the_next_stop():
    assert indent_cols("\t x") == 5
    assert indent_cols("  \tx") == 4


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("abc", "abc", 0), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("a" * 50, "b" * 50, 50)],
)
def test_within_edit_distance(a, b, distance):
    assert within_edit_distance(a, b, distance)
    assert distance == 0 or not within_edit_distance(a, b, distance - 1)


# Where the scanner's old table and the registry disagreed, one answer was kept; these pin it.


def test_python_triple_quotes_are_strings_not_comments():
    """Docstrings are string literals: an escaped quote does not close them (a comment would close)."""
    assert load_registry().languages["python"].block_comment is None
    assert state_after('x = """a \\""" b', "python") == '"""'
    assert state_after("x = '''a ( b", "python") == "'''"


def test_php_hash_comments_count():
    assert load_registry().languages["php"].line_comments == ("//", "#")
    assert imbalance("f(1  # )", "php") == 1


def test_ruby_begin_end_is_a_block_comment():
    assert imbalance("=begin (\n=end\nx = 1", "ruby") == 0
    assert lines_inside_block("=begin\n(\n=end\nx", "ruby") == [False, True, True, False]


def test_an_unknown_language_is_scanned_as_plain_text():
    """The registry's one fallback: no comment or string syntax is guessed (it used to be C's)."""
    assert imbalance('f("(")', "brainfuck") == imbalance('f("(")', "plaintext") == 1
    assert imbalance("f(1) // )", "brainfuck") == 1


def test_aliases_scan_like_their_language():
    assert state_after("s = `multi\nline", "js") == "`"
