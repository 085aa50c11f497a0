"""trim_closing_brackets: no closer that the rest of the line already has."""

from __future__ import annotations

from tests.postprocess.cases import apply, make

FILTER = "trim_closing_brackets"


def run(document, text, mode="LINE", language="java"):
    return apply(FILTER, make(document, text, mode, language))


def test_cuts_at_the_closer_the_suffix_has():
    assert run("list.add(█)\n", "item);") == "item"
    assert run("if (ok(█)) {\n", "a)) {") == "a"


def test_keeps_closers_matched_inside_the_suggestion():
    assert run("list.add(█)\n", "f(x)") == "f(x)"


def test_keeps_a_closer_the_suffix_does_not_have():
    assert run("list.add(█\n", "item);") == "item);"
    assert run("list.add(█];\n", "item);") == "item);"


def test_brackets_in_strings_do_not_count():
    assert run("log(█)\n", '")";') == '")";'


def test_the_cursor_inside_a_string():
    # The `)` in the suggestion is string text: the string opened before the cursor.
    assert run('log("(█")\n', 'a)"', language="javascript") == 'a)"'


def test_multi_line_suggestion():
    assert run("foo(█)\n", "\n  a,\n  b\n);", "BLOCK", "javascript") == "\n  a,\n  b\n"
