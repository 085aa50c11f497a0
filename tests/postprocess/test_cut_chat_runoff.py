"""cut_chat_runoff: leaked special tokens, markdown fences and chat prose after the code."""

from __future__ import annotations

import pytest

from tests.postprocess.cases import apply, make

FILTER = "cut_chat_runoff"


def run(document, text, mode="BLOCK", language="python"):
    return apply(FILTER, make(document, text, mode, language))


@pytest.mark.parametrize(
    "token",
    ["<|endoftext|>", "<|fim_pad|>", "<|im_end|>", "<|file_sep|>", "<｜fim▁end｜>", "<fim_middle>", "<EOT>"],
)
def test_cuts_at_a_leaked_special_token(token):
    assert run("x = █\n", f"compute(1){token}junk", "LINE") == "compute(1)"


def test_cuts_at_a_closing_fence_and_the_chat_after_it():
    text = "return a + b\n```\n\nThis function adds two numbers."
    assert run("def add(a, b):\n    █\n", text) == "return a + b\n"


def test_cuts_at_a_fence_glued_to_the_code():
    assert run("x = █\n", "1```\nExplanation: one.", "LINE") == "1"


def test_unwraps_a_suggestion_that_opens_with_a_fence():
    text = "```python\n    return a + b\n```\n\nThis adds."
    assert run("def add(a, b):\n    █\n", text) == "return a + b\n"


def test_leaves_fences_alone_in_markdown():
    text = "```python\nprint(1)\n```\n"
    assert run("# Usage\n\n█\n", text, language="markdown") == text


@pytest.mark.parametrize(
    "chat",
    [
        "This code defines a function that adds two numbers.",
        "Explanation:",
        "**Explanation:**",
        "## Explanation",
        "Here's how it works:",
        "In this code, `add` returns the sum.",
        "Note: the inputs must be numbers.",
        "Example usage:",
        "Sure! Here is the completed function.",
    ],
)
def test_cuts_chat_at_column_zero_after_code(chat):
    text = f"def add(a, b):\n    return a + b\n{chat}\nmore words here"
    assert run("█\n", text) == "def add(a, b):\n    return a + b"


def test_cuts_a_plain_sentence_after_a_blank_line():
    text = "x = 1\n\nThe value is set once and never changes again."
    assert run("█\n", text) == "x = 1\n"


def test_keeps_a_sentence_like_line_without_a_blank_line_before_it():
    # Without a chat opening or a blank line before it, a capitalized line may be code.
    text = "x = 1\nPrint the value of x now"
    assert run("█\n", text) == text


def test_keeps_prose_in_a_docstring():
    text = 'Add two numbers.\n\nThis function returns the sum of a and b.\nExplanation: none.\n"""'
    assert run('def add(a, b):\n    """█\n', text) == text


def test_keeps_prose_in_a_block_comment():
    text = "\nThis code handles the retry loop.\n\nHere is why it sleeps.\n*/"
    assert run("/*█\nint x;\n", text, language="c") == text


def test_keeps_chat_phrases_in_line_comments():
    text = "# This code defines the table.\n# Example usage:\nTABLE = {}"
    assert run("█\n", text) == text


def test_keeps_a_single_hash_label_comment_in_python():
    text = "# Example usage\nprint(add(1, 2))"
    assert run("█\n", text) == text


def test_never_cuts_the_cursor_line_when_it_has_text():
    assert run("# █\n", "This code defines the table.", "LINE") == "This code defines the table."


def test_prose_is_content_in_plain_text():
    text = "done.\n\nThis code defines nothing at all."
    assert run("Notes: █\n", text, language="plaintext") == text


def test_code_with_capitalized_identifiers_is_not_prose():
    text = "user = User(name)\n\nSession session = factory.open(user);"
    assert run("█\n", text, language="java") == text


def test_sentence_shaped_code_is_kept_where_statements_read_like_english():
    text = "\n\nSELECT name, email FROM users"
    assert run("-- active users█\n", text, language="sql") == text


def test_a_chat_preamble_at_the_cursor_is_cut():
    text = "Here is the completed code:\n```python\n    return 1\n```"
    assert run("def f():\n    █\n", text) == ""


def test_a_fenced_answer_that_rewrites_the_prefix_leaves_nothing():
    text = "```python\ndef f():\n    return 1\n```"
    assert run("def f():\n    █\n", text) == ""
