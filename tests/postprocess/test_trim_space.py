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


def test_lines_inserted_above_code_end_with_a_break_and_the_indentation():
    # `trim_space` would strip the break when the rest of the line starts with a space: then the
    # code after the cursor would join the suggestion's last line.
    assert run("def f():\n█    return x\n", "    y = 1\n    x = y\n", "BLOCK") == "    y = 1\n    x = y\n"
    assert run("def f():\n    █return x\n", "y = 1\n    x = y\n\n", "BLOCK") == "y = 1\n    x = y\n    "
    # Without a final break the suggestion runs into that code (`await ` before `f()`, a span
    # ending mid-word): nothing is added.
    assert run("async def g():\n    █f()\n", "await ") == "await "
    assert run("def f():\n █lance = 0\n", "   x = 1\n    ba", "BLOCK") == "   x = 1\n    ba"
    # A blank suggestion is left to drop_blank.
    assert run("def f():\n█    return x\n", "\n\n", "BLOCK") == ""
