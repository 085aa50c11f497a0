"""remove_repetitive_blocks: blocks generated in the same shape are kept once."""

from __future__ import annotations

from tests.postprocess.cases import apply, make

FILTER = "remove_repetitive_blocks"


def block(letter):
    return f"function on{letter}() {{\n  emit('{letter}');\n}}"


def run(text):
    return apply(FILTER, make("█\n", text, "BLOCK", "javascript"))


def test_keeps_the_first_of_a_run_of_similar_blocks():
    text = "\n\n".join(block(x) for x in "BCDE")
    assert run(text) == block("B")


def test_a_cut_off_last_block_joins_the_run():
    text = "\n\n".join(block(x) for x in "BCD") + "\n\nfunction onE() {\n  emi"
    assert run(text) == block("B")


def test_a_different_first_block_stays():
    first = "const bus = new EventBus();"
    text = "\n\n".join([first, *(block(x) for x in "BCD")])
    assert run(text) == first + "\n\n" + block("B")


def test_two_similar_blocks_stay():
    text = "\n\n".join(block(x) for x in "BC")
    assert run(text) == text


def test_different_blocks_stay():
    text = "const a = 1;\n\nfunction f() {\n  return a;\n}\n\nexport default f;"
    assert run(text) == text
