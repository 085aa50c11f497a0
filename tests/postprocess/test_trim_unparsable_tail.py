"""trim_unparsable_tail: BLOCK suggestions may not end in lines that break the parse."""

from __future__ import annotations

from tests.postprocess.cases import apply, make

FILTER = "trim_unparsable_tail"


def run(document, text, mode="BLOCK", language="python"):
    return apply(FILTER, make(document, text, mode, language))


def test_drops_a_cut_off_last_line():
    text = "if n < 2:\n        return n\n    return fib(n - 1) + fib("
    assert run("def fib(n):\n    █\n", text) == "if n < 2:\n        return n"


def test_a_suggestion_that_parses_stays():
    text = "if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)"
    assert run("def fib(n):\n    █\n", text) == text


def test_errors_already_in_the_document_do_not_count():
    # The document is mid-edit (`x = (` below); the suggestion adds no error of its own.
    text = "a = 1\n    b = 2"
    assert run("def f():\n    █\n    x = (\n", text) == text


def test_drops_an_extra_closing_brace():
    text = "\n  return 1;\n}"
    assert run("function f() {█\n}\n", text, language="javascript") == "\n  return 1;"


def test_gives_up_rather_than_emptying_the_suggestion():
    text = "return (\n        1 +"
    assert run("def f():\n    █\n", text) == text


def test_line_mode_and_languages_without_grammar_pass_through():
    text = "a(\nb("
    assert run("█\n", text, mode="LINE") == text
    assert run("█\n", text, language="cobol") == text
