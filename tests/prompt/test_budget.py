"""Token budgets: whole lines only, nearest lines kept, a prompt start that does not move per keystroke."""

from __future__ import annotations

import itertools

import pytest

from codegeex_lsp.prompt import Budget, FimRequest, Reference, build_prompt, get_format
from codegeex_lsp.prompt.budget import (
    CURSOR_LINE_RESERVE_BYTES,
    CURSOR_LINE_RESERVE_SHARE,
    cut_prefix,
    cut_suffix,
    fit_references,
    split_lines,
)

# One "token" per character keeps the arithmetic in these tests obvious.
count = len
LINES = [f"line{i:02d} = {i:02d}\n" for i in range(60)]  # 12 characters each
PREFIX = "".join(LINES) + "    cur"


def test_split_lines_ends_lines_only_at_newline():
    assert split_lines("a\fb\u2028c\r\nd\n\ne") == ["a\fb\u2028c\r\n", "d\n", "\n", "e"]
    assert split_lines("a\n") == ["a\n"]
    assert split_lines("") == []


def test_prefix_that_fits_is_kept_whole():
    cut = cut_prefix(PREFIX, len(PREFIX), count, step_lines=8)
    assert (cut.text, cut.n_tokens, cut.truncated, cut.first_line) == (PREFIX, len(PREFIX), False, 0)


@pytest.mark.parametrize("max_tokens", [7, 20, 100, 131, 400, 700])
def test_prefix_keeps_whole_lines_nearest_the_cursor(max_tokens):
    cut = cut_prefix(PREFIX, max_tokens, count, step_lines=8)
    assert cut.truncated
    assert cut.text == "".join(LINES[cut.first_line :]) + "    cur"
    assert cut.n_tokens == len(cut.text) <= max(max_tokens, len("    cur"))


def test_prefix_start_lies_on_the_step_grid_and_uses_the_budget():
    cut = cut_prefix(PREFIX, 400, count, step_lines=8)
    assert cut.first_line % 8 == 0
    # The next grid line up would not fit: the cut is as late as the grid allows, not later.
    assert len("".join(LINES[cut.first_line - 8 :]) + "    cur") > 400


def test_prefix_falls_back_to_single_lines_inside_the_cursor_step():
    # 20 tokens fit one line and the cursor, but no grid start: cut between grid lines.
    cut = cut_prefix(PREFIX, 20, count, step_lines=8)
    assert cut.text == LINES[-1] + "    cur"
    assert cut.first_line == 59


def test_cursor_line_over_the_budget_keeps_its_end():
    text = "a = 1\n" + "x" * 40 + "y" * 10
    cut = cut_prefix(text, 10, count, step_lines=4)
    assert (cut.text, cut.n_tokens, cut.truncated) == ("y" * 10, 10, True)


def test_prefix_start_is_stable_while_typing():
    """Typing at the cursor moves the start only in whole steps, far less often than a line-wise cut.

    The line typed here is longer than the cursor line's reserve, so its price grows as it is typed.
    """
    typed = "value = compute_something(alpha, beta, gamma) + another_call(delta) * 3" * 3
    assert len(typed) > 2 * min(CURSOR_LINE_RESERVE_BYTES, 500 // CURSOR_LINE_RESERVE_SHARE)

    def starts(step: int) -> list[int]:
        return [cut_prefix(PREFIX + typed[:i], 500, count, step).first_line for i in range(len(typed) + 1)]

    coarse, fine = starts(8), starts(1)
    assert coarse == sorted(coarse)
    assert all(s % 8 == 0 for s in coarse)
    changes = sum(a != b for a, b in itertools.pairwise(coarse))
    fine_changes = sum(a != b for a, b in itertools.pairwise(fine))
    assert 1 <= changes <= 1 + len(typed) // (8 * len(LINES[0]))
    assert fine_changes >= 4 * changes


@pytest.mark.parametrize("max_tokens", [200, 500, 2000])
def test_prefix_start_does_not_move_while_typing_a_line_of_ordinary_length(max_tokens):
    """Below the reserve the cursor line's price is constant: the cut is the same at every keystroke."""
    reserve = min(CURSOR_LINE_RESERVE_BYTES, max_tokens // CURSOR_LINE_RESERVE_SHARE)
    typed = ("result = alpha_beta(count, items) + render(value, total) * 3 - index // 2 " * 3)[:reserve]
    lines = "".join(LINES * 4)
    cuts = [cut_prefix(lines + typed[:i], max_tokens, count, 8) for i in range(len(typed) + 1)]
    assert len({cut.first_line for cut in cuts}) == 1
    assert all(cut.truncated and cut.n_tokens <= max_tokens for cut in cuts)


def test_prefix_that_fits_whole_is_cut_at_most_once_while_typing():
    """A small file is kept whole while it fits; the first cut then holds for the rest of the line."""
    typed = "total = alpha + beta"
    head = "".join(LINES[:10])  # 120 tokens
    cuts = [cut_prefix(head + typed[:i], 130, count, 4) for i in range(len(typed) + 1)]
    firsts = [cut.first_line for cut in cuts]
    assert firsts[0] == 0 and not cuts[0].truncated
    assert firsts == sorted(firsts) and len(set(firsts)) == 2


def test_suffix_keeps_whole_lines_nearest_the_cursor():
    suffix = ")\n" + "".join(LINES)
    cut = cut_suffix(suffix, 49, count)
    assert cut.text == ")\n" + "".join(LINES[:3])
    assert cut.truncated and cut.n_tokens == len(cut.text) <= 49
    assert cut_suffix(suffix, 50, count).text == ")\n" + "".join(LINES[:4])


def test_suffix_keeps_the_start_of_a_cursor_line_over_the_budget():
    cut = cut_suffix("y" * 5 + "w" * 25 + "\nz\n", 5, count)
    assert (cut.text, cut.n_tokens, cut.truncated) == ("y" * 5, 5, True)


def test_references_fill_the_budget_in_order():
    refs = (
        Reference("a.py", "a1\na2\n"),  # cost 4 + 6 = 10
        Reference("b.py", "b1\nb2\nb3\nb4\n"),  # cost 4 + 12 = 16
        Reference("c.py", "c\n"),
    )

    def cost(ref: Reference) -> int:
        return len(ref.path) + len(ref.text)

    fitted = fit_references(refs, 20, cost, count)
    assert fitted.references == (refs[0], Reference("b.py", "b1\nb2\n"))
    assert fitted.truncated and fitted.n_tokens == 20
    assert fit_references(refs, 100, cost, count).references == refs
    # Not even the path of the first one fits: nothing.
    assert fit_references(refs, 3, cost, count).references == ()
    # An empty file costs only its path and does not stop the filling.
    empty = Reference("e.py", "")
    assert fit_references((empty, refs[0]), 14, cost, count).references == (empty, refs[0])


def test_prompt_prefix_and_suffix_stay_within_budget(toks):
    tok = toks["qwen"]
    prefix = "".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(80)) + "def g(y):\n    ret"
    suffix = "urn y\n" + "".join(f"print(f{i}(1))\n" for i in range(80))
    budget = Budget(prefix_tokens=120, suffix_tokens=40, prefix_step_lines=4)
    prompt = build_prompt(get_format("qwen2.5-coder"), tok, FimRequest(prefix=prefix, suffix=suffix), budget)
    kept_prefix, carried = prompt.text.split("<|fim_prefix|>")[1].split("<|fim_suffix|>")
    carried = carried.split("<|fim_middle|>")[1]
    # The cursor line goes after the middle token, its last word forced; both count as prefix.
    assert (carried, prompt.forced_text) == ("   ", " ret")
    kept_prefix += carried + prompt.forced_text
    kept_suffix = prompt.text.split("<|fim_suffix|>")[1].split("<|fim_middle|>")[0]
    assert prompt.prefix_truncated and prompt.suffix_truncated
    assert prefix.endswith(kept_prefix) and prefix[: -len(kept_prefix)].endswith("\n")
    assert suffix.startswith(kept_suffix) and kept_suffix.endswith("\n")
    assert prompt.n_prefix_tokens == len(tok.encode(kept_prefix, add_special_tokens=False)) <= 120
    assert prompt.n_suffix_tokens == len(tok.encode(kept_suffix, add_special_tokens=False)) <= 40
    assert int(prompt.extras["prefix_first_line"]) % 4 == 0


def test_prompt_start_tokens_are_stable_while_typing(toks):
    """For a PSM prompt, the token ids up to the cursor line survive every keystroke unchanged."""
    tok = toks["qwen"]
    fmt = get_format("qwen2.5-coder")
    head = "".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(80))
    typed = "    result = alpha_beta(count, items) + render(value, total)"
    budget = Budget(prefix_tokens=150, suffix_tokens=16, prefix_step_lines=8)
    prompts = [
        build_prompt(fmt, tok, FimRequest(prefix=head + typed[:i], suffix="\n"), budget)
        for i in range(len(typed))
    ]
    starts = [p.token_ids[:12] for p in prompts]
    first_lines = [int(p.extras["prefix_first_line"]) for p in prompts]
    assert len(set(starts)) == 1  # the cursor line stays within its reserve: the cut never moves
    assert len(set(first_lines)) == 1 and first_lines[0] % 8 == 0
    assert all(p.prefix_truncated and p.n_prefix_tokens <= 150 for p in prompts)


def test_prompt_references_stay_within_their_budget(toks):
    tok = toks["qwen"]
    refs = tuple(Reference(f"lib/m{i}.py", "".join(f"x{j} = {i}\n" for j in range(30))) for i in range(3))
    item = "<|file_sep|>lib/m0.py\n" + refs[0].text + "\n"
    one = len(tok.encode(item, add_special_tokens=False))
    budget = Budget(reference_tokens=one + one // 2)
    request = FimRequest(prefix="import lib\n", path="main.py", references=refs, repo_name="demo")
    prompt = build_prompt(get_format("qwen2.5-coder"), tok, request, budget)
    assert prompt.text.count("<|file_sep|>") == 3  # two references (one cut) and the current file
    assert "<|file_sep|>lib/m0.py\n" + refs[0].text + "\n" in prompt.text
    block = prompt.text.split("<|file_sep|>lib/m1.py\n")[1].split("<|file_sep|>")[0]
    second = block.removesuffix("\n")  # the template's newline after the file text
    assert refs[1].text.startswith(second) and second.endswith("\n") and second != refs[1].text
    assert "lib/m2.py" not in prompt.text
    assert prompt.extras["references"] == "2 of 3"
    context = prompt.text.split("<|file_sep|>main.py")[0].split("demo\n", 1)[1]
    assert len(tok.encode(context, add_special_tokens=False)) <= budget.reference_tokens
