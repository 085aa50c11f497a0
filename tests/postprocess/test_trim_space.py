"""trim_space: no whitespace the document does not need."""

from __future__ import annotations

from tests.postprocess.cases import apply, make

FILTER = "trim_space"


def run(document, text, mode="LINE"):
    return apply(FILTER, make(document, text, mode))


def test_no_leading_space_after_a_space():
    assert run("x = █\n", " 42") == "42"


def test_leading_space_stays_without_one_before():
    assert run("x =█\n", " 42") == " 42"


def test_an_indentation_only_line_keeps_the_suggestions_indentation():
    assert run("def f():\n█\n", "    return 1") == "    return 1"


def test_trailing_whitespace_and_line_breaks_go_before_an_empty_rest_of_line():
    assert run("x = █\n", "1  \n\n") == "1"


def test_trailing_space_stays_before_text_on_the_line():
    assert run("f(█)\n", "a, ") == "a, "


def test_trailing_whitespace_inside_goes():
    assert run("def f():\n    █\n", "a = 1   \n    return a", "BLOCK") == "a = 1\n    return a"
