"""remove_repetitive_lines: a line looping at the end of the suggestion is kept once."""

from __future__ import annotations

from tests.postprocess.cases import apply, make

FILTER = "remove_repetitive_lines"
DOC = "def f():\n    █\n"


def run(text, document=DOC):
    return apply(FILTER, make(document, text, "BLOCK"))


def test_keeps_one_copy_of_a_looping_line():
    text = "x = 1" + "\n    x += 1" * 6
    assert run(text) == "x = 1\n    x += 1"


def test_a_cut_off_last_copy_joins_the_run():
    text = "x = 1" + "\n    total += 1" * 4 + "\n    tot"
    assert run(text) == "x = 1\n    total += 1"


def test_the_first_line_counts_with_the_cursors_indentation():
    text = "\n    ".join(["print(x)"] * 5)
    assert run(text) == "print(x)"


def test_nearly_equal_lines_form_a_run():
    text = "\n    ".join(["a = 1", "v.append(10)", "v.append(11)", "v.append(12)", "v.append(13)"])
    assert run(text) == "a = 1\n    v.append(10)"


def test_fewer_than_four_copies_stay():
    text = "x = 1\n    x += 1\n    x += 1\n    x += 1"
    assert run(text) == text


def test_closing_lines_are_no_loop():
    text = "if a:\n        if b:\n            pass\n    }\n    }\n    }\n    }"
    assert run(text, "█\n") == text


def test_different_indentation_is_no_loop():
    text = "\n".join(["x()", "    x()", "        x()", "            x()"])
    assert run(text, "█\n") == text
