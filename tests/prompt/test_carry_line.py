"""Line carry: in PSM formats the cursor line follows the middle token, its last word is forced by
decoding, so typing only appends to the prompt."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from codegeex_lsp.prompt import FORMATS, Budget, FimRequest, build_prompt, get_format
from codegeex_lsp.prompt.budget import CURSOR_LINE_RESERVE_SHARE
from codegeex_lsp.prompt.healing import split_trailing_whitespace
from codegeex_lsp.remote.prompt import build_text_prompt
from tests.prompt.expect import S, expected_ids

HEAD = "def add(a, b):\n"
LINE = "    return a"
CARRIED, WORD = "    return", " a"  # the line before its last word, and the word being typed
SUFFIX = "\n\nprint(add(1, 2))\n"
REQUEST = FimRequest(prefix=HEAD + LINE, suffix=SUFFIX, language="python", path="src/app.py")
NO_CARRY = Budget(carry_line=False)

# (format, tokenizer, the template's pieces around prefix and suffix)
PSM = [
    ("qwen2.5-coder", "qwen", ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")),
    ("starcoder", "starcoder", ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")),
    ("deepseek-coder", "deepseek", ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>")),
    ("glm4.5", "glm4", ("<|code_prefix|>", "<|code_suffix|>", "<|code_middle|>")),
]
# Formats whose prompt already ends at the cursor (SPM, mask, prefix only), and Code Llama.
NOT_CARRIED = [
    ("codegeex4", "glm4"),
    ("codestral", "codestral"),
    ("glm", "spm"),
    ("codegeex2", "spm"),
    ("codellama", "codellama"),
]


@pytest.mark.parametrize(("name", "tok_name", "marks"), PSM)
def test_psm_prompt_ends_with_the_cursor_line_after_the_middle_token(toks, name, tok_name, marks):
    tok = toks[tok_name]
    pre, suf, mid = marks
    prompt = build_prompt(get_format(name), tok, REQUEST, Budget())
    assert prompt.text.endswith(f"{pre}{HEAD}{suf}{SUFFIX}{mid}{CARRIED}")
    tail = expected_ids(tok, S(mid), CARRIED)
    assert prompt.token_ids[-len(tail) :] == tail
    assert prompt.forced_text == WORD
    assert prompt.extras["carry_line"] == "carried"
    assert tok.decode(list(prompt.token_ids)) == prompt.text

    off = build_prompt(get_format(name), tok, REQUEST, NO_CARRY)
    assert off.text.endswith(f"{pre}{HEAD}{LINE}{suf}{SUFFIX}{mid}")
    assert off.extras["carry_line"] == "off" and off.forced_text == ""
    assert prompt.n_prefix_tokens == off.n_prefix_tokens  # the carried line still counts as prefix


def test_qwen_snapshot_with_the_carried_line(toks):
    tok = toks["qwen"]
    prompt = build_prompt(get_format("qwen2.5-coder"), tok, REQUEST, Budget())
    assert prompt.text == f"<|fim_prefix|>{HEAD}<|fim_suffix|>{SUFFIX}<|fim_middle|>{CARRIED}"
    assert prompt.token_ids == expected_ids(
        tok, S("<|fim_prefix|>"), HEAD, S("<|fim_suffix|>"), SUFFIX, S("<|fim_middle|>"), CARRIED
    )
    assert prompt.forced_text == WORD


@pytest.mark.parametrize(
    ("line", "carried", "word"),
    [
        ("    resu", "   ", " resu"),  # the indentation's last space goes with the word, as in "Ġresult"
        # The test vocabulary splits words like GPT-2; Qwen2.5's own pre-tokenizer keeps one leading
        # punctuation mark with the word (".ind", "(items").
        ("x.ind", "x.", "ind"),
        ("total = count(items", "total = count(", "items"),
        ("import o", "import", " o"),
        ("x", "", "x"),  # one word alone: all of it forced
        ("s = 'héllo", "s = 'héllo", ""),  # a non-ASCII word is carried whole
    ],
)
def test_the_word_being_typed_is_forced_not_prompted(toks, line, carried, word):
    prompt = build_prompt(
        get_format("qwen2.5-coder"), toks["qwen"], replace(REQUEST, prefix=HEAD + line), Budget()
    )
    assert prompt.text.endswith("<|fim_middle|>" + carried)
    assert prompt.forced_text == word


@pytest.mark.parametrize(("name", "tok_name"), NOT_CARRIED)
def test_formats_that_do_not_carry_are_unchanged(toks, name, tok_name):
    tok = toks[tok_name]
    on = build_prompt(get_format(name), tok, REQUEST, Budget())
    off = build_prompt(get_format(name), tok, REQUEST, NO_CARRY)
    assert (on.text, on.token_ids, on.forced_text) == (off.text, off.token_ids, "")
    assert on.extras["carry_line"] == "unsupported"


def test_a_tokenizer_without_words_gets_no_carry():
    """A remote server's prompt is text only: its tokenizer's words are unknown, nothing is forced."""
    text, _stops = build_text_prompt(get_format("qwen2.5-coder"), REQUEST, Budget())
    assert text == f"<|fim_prefix|>{HEAD}{LINE}<|fim_suffix|>{SUFFIX}<|fim_middle|>"


@pytest.mark.parametrize("line", ["", "    ", "\t"])
def test_a_blank_cursor_line_is_not_carried(toks, line):
    """An empty line (or bare indentation, which the service heals away first) stays in the prefix."""
    request = replace(REQUEST, prefix=HEAD + line)
    prompt = build_prompt(get_format("qwen2.5-coder"), toks["qwen"], request, Budget())
    off = build_prompt(get_format("qwen2.5-coder"), toks["qwen"], request, NO_CARRY)
    assert prompt.text == off.text == f"<|fim_prefix|>{HEAD}{line}<|fim_suffix|>{SUFFIX}<|fim_middle|>"
    assert prompt.extras["carry_line"] == "nothing" and prompt.forced_text == ""


def test_first_line_and_blank_suffix_are_carried_too(toks):
    tok = toks["qwen"]
    prompt = build_prompt(get_format("qwen2.5-coder"), tok, FimRequest(prefix="import o"), Budget())
    assert (prompt.text, prompt.forced_text) == ("<|fim_prefix|><|fim_suffix|><|fim_middle|>import", " o")


def test_carried_text_cannot_inject_special_tokens(toks):
    tok = toks["qwen"]
    request = FimRequest(prefix='x = 1\ns = "<|fim_middle|><|endoftext|> x', suffix='"\n')
    prompt = build_prompt(get_format("qwen2.5-coder"), tok, request, Budget())
    assert prompt.text.endswith('<|fim_middle|>s = "<|fim_middle|><|endoftext|>')
    assert prompt.forced_text == " x"
    assert prompt.token_ids.count(tok.convert_tokens_to_ids("<|fim_middle|>")) == 1
    assert tok.convert_tokens_to_ids("<|endoftext|>") not in prompt.token_ids


def test_formats_that_carry_end_with_their_middle_token():
    for fmt in FORMATS:
        if fmt.carries_line:
            assert fmt.order == "PSM" and not fmt.mask_tokens, fmt.name
            assert fmt.template.index("{prefix}") < fmt.template.index("{suffix}"), fmt.name
            assert any(fmt.template.endswith(token) for token in fmt.special_tokens), fmt.name


def common_prefix_len(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _typing(head: str, line: str, suffix: str) -> list[FimRequest]:
    """One request per keystroke, the prefix healed as the service heals it."""
    return [
        FimRequest(prefix=split_trailing_whitespace(head + line[:i])[0], suffix=suffix, language="python")
        for i in range(len(line) + 1)
    ]


@pytest.mark.parametrize(("name", "tok_name"), [("qwen2.5-coder", "qwen"), ("starcoder", "starcoder")])
def test_typing_a_line_only_appends_to_the_prompt(toks, name, tok_name):
    """Each keystroke's prompt starts with all of the previous one: within a word it is the same
    prompt (the word is forced, not prompted), after a word it grows by that word's tokens. Nothing
    is lost: the prefix field, the carried text and the forced word spell the prefix typed."""
    tok, fmt = toks[tok_name], get_format(name)
    pre, suf, mid = (t for t in fmt.special_tokens[:3])
    head = "".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(60)) + "def g(items):\n"
    line = "    result = alpha_beta(count, items) + render(value, total[index])"
    suffix = "\n    return result\n\n\nprint(g([1, 2, 3]))\n" * 4
    budget = Budget(prefix_tokens=600, suffix_tokens=64, prefix_step_lines=8)  # reserve 75 bytes
    assert len(line) < 600 // CURSOR_LINE_RESERVE_SHARE
    prompts = [build_prompt(fmt, tok, request, budget) for request in _typing(head, line, suffix)]
    assert all(p.prefix_truncated for p in prompts)  # the budget cut is in play, and holds still
    for request, prompt in zip(_typing(head, line, suffix), prompts, strict=True):
        field = prompt.text.split(pre)[1].split(suf)[0]
        assert request.prefix.endswith(field + prompt.text.split(mid)[1] + prompt.forced_text)
    for before, after in itertools.pairwise(prompts):
        assert after.token_ids[: len(before.token_ids)] == before.token_ids, after.text[-40:]
    distinct = len({p.token_ids for p in prompts})
    assert distinct < len(line) // 3  # about one prompt per word typed

    # Without the carry each keystroke (but a healed-away space) changes the prompt before the suffix.
    off = [build_prompt(fmt, tok, r, replace(budget, carry_line=False)) for r in _typing(head, line, suffix)]
    for before, after in itertools.pairwise(off):
        if before.token_ids != after.token_ids:
            shared = common_prefix_len(before.token_ids, after.token_ids)
            assert shared < len(before.token_ids) - before.n_suffix_tokens
