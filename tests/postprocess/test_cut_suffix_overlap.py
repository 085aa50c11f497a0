"""cut_suffix_overlap: the suggestion must not repeat the text after the cursor."""

from __future__ import annotations

from tests.postprocess.cases import apply, make

FILTER = "cut_suffix_overlap"


def run(document, text, mode="BLOCK", language="python"):
    return apply(FILTER, make(document, text, mode, language))


def test_cuts_where_the_lines_below_the_cursor_reappear():
    doc = "def f():\n    █\n    b = a + 1\n    return b\n"
    assert run(doc, "a = 1\n    b = a + 1\n    return b\n") == "a = 1"


def test_a_suggestion_cut_short_may_repeat_fewer_lines():
    doc = "def f():\n    █\n    b = a + 1\n    return b\n"
    assert run(doc, "a = 1\n    b = a + 1") == "a = 1"


def test_lines_must_reappear_in_order():
    doc = "def f():\n    █\n    b = a + 1\n    return b\n"
    text = "a = 1\n    b = a + 1\n    print(b)"
    assert run(doc, text) == text


def test_indentation_counts():
    doc = "def f(xs):\n    █\n    return result\n"
    text = "for x in xs:\n        if x:\n            return result"
    assert run(doc, text) == text


def test_whitespace_inside_a_line_does_not_count():
    doc = "def f():\n    █\n    return  a+b\n"
    assert run(doc, "a = 1\n    return  a+b  ") == "a = 1"
    assert run(doc, "a = 1\n    return a+b") == "a = 1"


def test_whole_suggestion_repeating_the_next_line_becomes_empty():
    assert run("def f():\n    █\n    return 1\n", "return 1") == ""


def test_a_bare_closer_is_cut_when_it_closes_the_prefix_block():
    doc = "function f() {█\n}\n"
    assert run(doc, "\n  return 1;\n}", language="javascript") == "\n  return 1;"


def test_a_bare_closer_of_the_suggestions_own_block_stays():
    # The method's `}` sits at column 0 like the class's `}` below, but closes the method.
    doc = "class A {\n█\n}\n"
    text = "void f() {\n    g();\n}"
    assert run(doc, text, language="java") == text


def test_closing_quotes_of_the_prefix_docstring_are_cut():
    doc = 'def f():\n    """█\n    """\n'
    assert run(doc, 'Doc.\n    """') == "Doc."


def test_tail_equal_to_the_rest_of_the_line_is_dropped():
    assert run("x = f(█)\n", "a)", "LINE") == "a"
    assert run("const x = █;\n", "1;", "LINE", "javascript") == "1"
    assert run("y = █ + 1\n", "x + 1", "LINE") == "x"


def test_partial_tail_must_be_closers():
    assert run("foo(█);\n", "a)", "LINE") == "a"
    assert run("foo(█s)\n", "arg", "LINE") == "arg"


def test_a_tail_that_balances_the_suggestion_stays():
    assert run("print(█)\n", "foo()", "LINE") == "foo()"
    assert run('name = "█"\n', '"Ada"', "LINE") == '"Ada"'


def test_a_closing_quote_already_there_is_dropped():
    assert run('name = "█"\n', 'Ada"', "LINE") == "Ada"


def test_multi_line_suggestion_closing_the_call_on_the_cursor_line():
    assert run("foo(█)\n", "\n  a,\n  b\n)", language="javascript") == "\n  a,\n  b\n"
    assert run("print(█)\n", "\n  foo(\n    1)", language="javascript") == "\n  foo(\n    1)"


def test_above_code_on_the_cursor_line_that_code_is_the_first_line_to_find():
    # HumanEval-Infilling's multi-line holes: the cursor at column 0 of a line of code.
    doc = "def f():\n    result = []\n█    depth = 0\n    return result\n"
    assert run(doc, "    current = []\n    depth = 0\n    return result") == "    current = []\n"
    # Only indentation before the cursor: the same, and the cut keeps the line break.
    doc = "def f():\n    result = []\n    █depth = 0\n    return result\n"
    assert run(doc, "current = []\n    depth = 0\n") == "current = []\n"


def test_a_span_ending_mid_word_falls_back_to_the_lines_below():
    # HumanEval-Infilling span `   balance = 0\n    for op in operations:\n        ba|lance += op`
    doc = "def f(ops):\n █lance += op\n        if balance < 0:\n            return True\n"
    text = "   balance = 0\n    for op in ops:\n        balance += op\n        if balance < 0:\n            return True\n"
    assert run(doc, text) == "   balance = 0\n    for op in ops:\n        ba"
