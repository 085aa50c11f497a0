"""Whitespace healing: the prompt ends before the cursor's indentation; the answer is re-aligned."""

from __future__ import annotations

import pytest

from codegeex_lsp.prompt.healing import heal, split_trailing_whitespace


@pytest.mark.parametrize(
    ("prefix", "kept", "trailing"),
    [
        ("def f():\n    ", "def f():\n", "    "),
        ("x = ", "x =", " "),
        ("\tif x:\n\t\t", "\tif x:\n", "\t\t"),
        ("return x", "return x", ""),
        ("a\n", "a\n", ""),  # a newline is not healed: it ends the line the user finished
    ],
)
def test_split(prefix, kept, trailing):
    assert split_trailing_whitespace(prefix) == (kept, trailing)


@pytest.mark.parametrize(
    ("text", "trailing", "expected"),
    [
        ("    return x", "    ", "return x"),  # the model re-creates the indentation
        ("  return x", "    ", "return x"),  # it indents differently: the cursor's indentation wins
        ("\n    return x", "    ", "\n    return x"),  # it starts a new line: left alone
        (" n % 2 === 0;", " ", "n % 2 === 0;"),
        ("foo", "", "foo"),
    ],
)
def test_heal(text, trailing, expected):
    assert heal(text, trailing) == expected
