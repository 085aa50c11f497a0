"""remove_line_ends_with_repetition: a last line ending in a loop is dropped."""

from __future__ import annotations

import pytest

from tests.postprocess.cases import apply, make

FILTER = "remove_line_ends_with_repetition"


def run(text, mode="BLOCK"):
    return apply(FILTER, make("x = █\n", text, mode))


def test_drops_a_last_line_that_loops():
    assert run("[\n    1, 2,\n    0, 0, 0, 0, 0, 0, 0, 0, 0, 0") == "[\n    1, 2,"


def test_a_looping_only_line_becomes_empty():
    assert run("abcabcabcabcabcabcabc", "LINE") == ""


def test_a_long_unit_repeated_four_times():
    assert run("ok\nfoo(bar, baz) foo(bar, baz) foo(bar, baz) foo(bar, baz) ") == "ok"


@pytest.mark.parametrize(
    "line", ["# ------------------------------", "// ==========================", "[0, 0, 0, 0, 0, 0, 0]"]
)
def test_separators_and_closed_literals_stay(line):
    assert run(f"1\n{line}") == f"1\n{line}"
