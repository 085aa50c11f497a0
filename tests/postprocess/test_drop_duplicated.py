"""drop_duplicated: a suggestion (nearly) equal to the text after the cursor is discarded."""

from __future__ import annotations

from tests.postprocess.cases import apply, make

FILTER = "drop_duplicated"


def run(document, text, mode="LINE"):
    return apply(FILTER, make(document, text, mode))


def test_equal_to_the_next_line_is_discarded():
    assert run("def f():\n    █\n    return x\n", "return x") is None


def test_equal_to_the_rest_of_the_line_is_discarded():
    assert run("f(█)\n", ")") is None


def test_a_one_letter_typo_of_a_long_line_is_discarded():
    assert run("    █\n    return sorted(result, key=len)\n", "return sorted(results, key=len)") is None


def test_a_trailing_semicolon_or_comma_does_not_count():
    assert run("    █\n    return x\n", "return x;") is None
    assert run("[\n    █\n    1,\n]\n", "1") is None


def test_short_texts_must_be_equal():
    assert run("x = █;\n", "1") is not None
    assert run("x = █\ny\n", "z") is not None
    assert run("def f(x):\n    if x:\n        █\n    return 0\n", "return 1") is not None


def test_compares_as_many_lines_as_both_have():
    doc = "def f():\n    █\n    a = 1\n    b = 2\n    return a + b\n"
    assert run(doc, "a = 1\n    b = 2", "BLOCK") is None
    assert run(doc, "a = 1\n    b = 3\n    c = 4", "BLOCK") is not None


def test_different_text_stays():
    assert run("def f():\n    █\n    return x\n", "x = compute()") == "x = compute()"


def test_no_suffix_keeps_everything():
    assert run("x = █", "1") == "1"
