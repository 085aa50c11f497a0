"""A cursor line over the whole budget is cut around the cursor, and never tokenized whole."""

from __future__ import annotations

from codegeex_lsp.prompt.budget import MAX_CHARS_PER_TOKEN, bound_prefix, cut_prefix, cut_suffix


class Counter:
    """Counts one token per UTF-8 byte (the worst case a byte-level tokenizer can reach) and
    remembers the longest text it was asked to count."""

    def __init__(self) -> None:
        self.longest = 0

    def __call__(self, text: str) -> int:
        self.longest = max(self.longest, len(text))
        return len(text.encode("utf-8"))


def test_a_2mb_cursor_line_in_the_prefix_is_cut_to_the_budget():
    line = "x = [" + "1, 中" * 500_000  # about 2.5 MB of UTF-8 on one line
    count = Counter()
    cut = cut_prefix("import os\n" + line, 1024, count)
    assert cut.n_tokens <= 1024 and cut.truncated
    assert line.endswith(cut.text) and len(cut.text) > 300  # the end nearest the cursor is kept
    assert count.longest <= 1024 * MAX_CHARS_PER_TOKEN


def test_a_2mb_cursor_line_in_the_suffix_is_cut_to_the_budget():
    line = "1, 中" * 500_000 + "]\nnext = 1\n"
    count = Counter()
    cut = cut_suffix(line, 256, count)
    assert cut.n_tokens <= 256 and cut.truncated
    assert line.startswith(cut.text) and "\n" not in cut.text
    assert count.longest <= 256 * MAX_CHARS_PER_TOKEN


def test_a_cursor_line_that_fits_is_kept_whole():
    line = "    value = compute(a, b)  # " + "é" * 40
    for text in ("a = 1\n" + line, line):
        assert cut_prefix(text, 1024, Counter()).text.endswith(line)
    assert cut_suffix(line + "\nb = 2\n", 1024, Counter()).text.startswith(line)


def test_bound_prefix_cuts_inside_an_overlong_cursor_line():
    prefix = "a = 1\n" + "y" * 100_000
    assert bound_prefix(prefix, 4096) == "y" * 4096
    short = "a = 1\n" * 2000 + "cur"
    assert bound_prefix(short, 4096).endswith("a = 1\ncur")
