"""limit_scope: one line in LINE mode, one block in BLOCK mode."""

from __future__ import annotations

from codegeex_lsp.context import Document, analyze_cursor
from codegeex_lsp.context.scope import ScopeInfo
from tests.postprocess.cases import apply, make, split_document

FILTER = "limit_scope"


def run(document, text, mode="BLOCK", language="python", scope=None):
    return apply(FILTER, make(document, text, mode, language, scope))


def test_line_mode_keeps_the_first_line():
    assert run("x = █\n", "foo(1)\ny = 2\n", "LINE") == "foo(1)"


def test_line_mode_takes_the_next_line_on_an_indentation_only_line():
    assert run("def f():\n    █\n", "\n\n    return 1\n    x = 2", "LINE") == "return 1"


def test_line_mode_at_column_zero_keeps_the_lines_indentation():
    assert run("def f():\n█\n", "\n    return 1", "LINE") == "    return 1"


def test_line_mode_cannot_dedent_the_cursor():
    assert run("if a:\n        █\n", "\n    return 1", "LINE") == "return 1"


def test_line_mode_after_text_and_a_line_break_is_empty():
    assert run("x = 1█\n", "\ny = 2", "LINE") == ""


def test_block_after_a_header_keeps_the_deeper_lines():
    text = "\n    if a:\n        return 1\n    return 2\n\n\ndef g():\n    pass"
    assert run("def f(a):█\n", text) == "\n    if a:\n        return 1\n    return 2\n\n"


def test_block_on_a_blank_line_keeps_the_same_level():
    text = "x = 1\n    y = x + 1\n    return y\n\nprint(f())"
    assert run("def f():\n    █\n", text) == "x = 1\n    y = x + 1\n    return y\n"


def test_block_keeps_the_closing_line_of_the_block():
    text = "\n  return 1;\n}\n\nfunction g() {}"
    assert run("function f() {█\n", text, language="javascript") == "\n  return 1;\n}"


def test_block_goes_on_through_else():
    text = "\n    a()\nelse:\n    b()\nc()"
    assert run("if x:█\n", text) == "\n    a()\nelse:\n    b()"


def test_block_goes_on_through_brace_else():
    text = "\n    a();\n  } else {\n    b();\n  }\n  c();"
    assert run("  if (x) {█\n", text, language="javascript") == "\n    a();\n  } else {\n    b();\n  }"


def test_block_ends_where_brackets_close_what_the_prefix_opened():
    # Unindented output: only the bracket count tells where the function ends.
    text = "return 1;\n}\nfunction g() {\nreturn 2;\n}"
    assert run("function f() {\n█\n", text, language="javascript") == "return 1;\n}"


def test_brackets_in_strings_do_not_count():
    text = 'log("}");\n  log("done");\n}\nmore();'
    assert run("function f() {\n  █\n", text, language="javascript") == 'log("}");\n  log("done");\n}'


def test_docstring_lines_do_not_end_the_block():
    text = 'Sum.\n\nArgs:\n  a: first\n"""\n    return a'
    assert run('def f(a):\n    """█\n', text) == 'Sum.\n\nArgs:\n  a: first\n"""'


def test_scope_stops_the_block_at_its_own_indentation():
    text = "def helper():\n    pass\n\ndef other():\n    pass"
    scope = ScopeInfo("class", "class_definition", "A", 0, 0, 0, 0, indent="")
    assert run("class A:\n█\n", text, scope=scope) == "def helper():\n    pass\n"
    assert run("class A:\n█\n", text) == text


def test_the_context_stages_scope_plugs_in():
    document = "class Calc {\n    int add(int a, int b) {\n        return a + b;\n    }\n\n█\n}\n"
    prefix, _ = split_document(document)
    context = analyze_cursor(Document("file:///Calc.java", document.replace("█", ""), "java"), len(prefix))
    assert context.scope is not None and context.scope.kind == "class"
    text = "int sub(int a, int b) {\n    return a - b;\n}\n\nint mul(int a, int b) {\n    return a * b;\n}"
    expected = "int sub(int a, int b) {\n    return a - b;\n}"
    assert run(document, text, language="java", scope=context.scope) == expected


def test_block_without_non_blank_lines_is_unchanged():
    assert run("def f():\n    █\n", "\n\n") == "\n\n"


def test_block_after_a_complete_line_may_add_statements_at_its_level():
    text = "\n    y = x + 1\n    return y\n\nprint(f())"
    assert run("def f():\n    x = 1█\n", text) == "\n    y = x + 1\n    return y\n"


def test_block_after_a_complete_line_may_not_leave_its_block():
    assert run("def f():\n    return 1█\n", "\n\n\ndef g():\n    pass") == "\n\n"
