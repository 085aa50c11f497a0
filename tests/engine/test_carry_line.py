"""Line carry in the service: typing on a line reuses the whole previous prompt, and the completion
is still exactly the text after the cursor."""

from __future__ import annotations

import itertools

import pytest

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine import service as service_module
from codegeex_lsp.engine.decode import LookupParams, generate
from codegeex_lsp.engine.forced import token_texts
from codegeex_lsp.engine.kv_cache import common_prefix_len
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.engine.service import CompletionService
from codegeex_lsp.prompt.types import FimRequest, Prompt
from codegeex_lsp.protocol import Completion

BASE = (
    "import os\nimport sys\n\n\ndef fibonacci(n):\n    if n < 2:\n        return n\n"
    "    return fibonacci(n - 1) + fibonacci(n - 2)\n\n\nclass Stack:\n    def __init__(self):\n"
    "        self.items = []\n\n"
)
SUFFIX = "\n\n    def push(self, x):\n        self.items.append(x)\n\n\nfor i in range(10):\n    print(i)\n"
TYPED = "    def pop(self, index = -1):"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def loaded(tiny_model_factory):
    """The tiny Qwen2 model: its tokenizer has the <|fim_*|> tokens, so the format is qwen2.5-coder."""
    return load_model(EngineOptions(model=str(tiny_model_factory("qwen2")), dtype="float32", quant="none"))


def _keystrokes() -> list[FimRequest]:
    return [
        FimRequest(prefix=BASE + TYPED[:i], suffix=SUFFIX, language="python", mode="LINE")
        for i in range(1, len(TYPED) + 1)
    ]


def test_typing_a_line_reuses_nearly_the_whole_prompt(loaded):
    reuse = CompletionService(loaded, kv_reuse=True, speculative=False)
    fresh = CompletionService(loaded, kv_reuse=False, speculative=False)
    assert reuse.format.name == "qwen2.5-coder" and reuse.format.carries_line
    opts = CompletionOptions(max_tokens=8)
    previous: tuple[int, ...] = ()
    for n, request in enumerate(_keystrokes()):
        prompt = reuse.build(request, opts)
        blank = not request.prefix.rsplit("\n", 1)[1].strip()
        assert prompt.extras["carry_line"] == ("nothing" if blank else "carried")
        got = reuse.complete(request, opts, cache_key="a.py")
        want = fresh.complete(request, opts, cache_key="a.py")
        assert got.raw == want.raw and got.candidates == want.candidates, request.prefix[-20:]
        assert got.generated_tokens == want.generated_tokens
        assert got.reused_tokens + got.prefill_tokens == got.prompt_tokens == len(prompt.token_ids)
        if n:
            shared = common_prefix_len(previous, prompt.token_ids)
            assert got.reused_tokens == min(shared, len(prompt.token_ids) - 1)
            assert got.prefill_tokens <= 6, request.prefix[-20:]  # the word being typed, re-split
        previous = prompt.token_ids


def test_without_the_carry_each_keystroke_prefills_the_suffix_again(loaded):
    reuse = CompletionService(loaded, kv_reuse=True, speculative=False)
    on, off = CompletionOptions(max_tokens=4), CompletionOptions(max_tokens=4, carry_line=False)
    n_suffix = len(loaded.tokenizer.encode(SUFFIX, add_special_tokens=False))
    prefilled = {True: 0, False: 0}
    for carry, opts in ((True, on), (False, off)):
        reuse.drop_cache()
        first, *rest = _keystrokes()
        reuse.complete(first, opts, cache_key="a.py")
        for request in rest:
            prefilled[carry] += reuse.complete(request, opts, cache_key="a.py").prefill_tokens
        assert reuse.build(request, opts).extras["carry_line"] == ("carried" if carry else "off")
    assert prefilled[False] > len(rest) * n_suffix // 2  # a typed space is healed away: no change
    assert prefilled[True] * 10 < prefilled[False]


# (prefix as typed, the rest of the cursor line in the true document, the completion expected)
CURSORS = [
    ("def add(a, b):\n    return a", " + b", " + b"),  # mid-line: the carried part is not repeated
    ("def add(a, b):\n    return ", "a + b", "a + b"),  # trailing space: healed, carried, re-created
    ("def add(a, b):\n    ret", "urn a + b", "urn a + b"),  # mid-word
    ("def add(a, b):\n    ", "return a + b", "return a + b"),  # only indentation: nothing carried
    ("def add(a, b):\n", "    return a + b", "    return a + b"),  # an empty line
]


@pytest.mark.parametrize(("prefix", "rest", "expected"), CURSORS)
def test_completion_is_the_text_after_the_cursor(loaded, monkeypatch, prefix, rest, expected):
    """A model that writes the true document after whatever its prompt ends with (the prefix field,
    then the carried start of the middle), its first tokens spelling the forced word, which
    `generate` leaves out of the text: the same completion with and without the carry."""
    suffix = "\n\nprint(add(1, 2))\n"
    document = prefix + rest + suffix
    forced_seen: list[str] = []

    def oracle(model, tok, prompt, options, **_kwargs) -> Completion:
        text = tok.decode(list(prompt.token_ids))
        head, tail = text.split("<|fim_prefix|>")[1].split("<|fim_suffix|>")
        carried = tail.split("<|fim_middle|>")[1]
        forced_seen.append(carried + prompt.forced_text)
        written = head + carried + prompt.forced_text
        assert document.startswith(written)
        middle = document[len(written) :].removesuffix(suffix)
        ids = tuple(tok.encode(middle, add_special_tokens=False))
        timings = {"prefill_s": 0.0, "decode_s": 0.0, "decode_tok_s": 0.0}
        return Completion(
            raw=(middle,),
            token_ids=(ids,),
            prompt_tokens=len(prompt.token_ids),
            finish_reason="stop",
            timings=timings,
        )

    monkeypatch.setattr(service_module, "generate", oracle)
    service = CompletionService(loaded, kv_reuse=False, speculative=False)
    request = FimRequest(prefix=prefix, suffix=suffix, language="python", mode="LINE")
    carried = service.complete(request, CompletionOptions(max_tokens=16))
    plain = service.complete(request, CompletionOptions(max_tokens=16, carry_line=False))
    assert carried.completion == plain.completion == expected
    line = prefix.rsplit("\n", 1)[1].rstrip()
    assert forced_seen == [line, ""]  # what the prompt carried after the middle token and forced


# -- forced text in the decode loop -----------------------------------------------------------------


def _prompt(loaded, forced_text: str) -> Prompt:
    ids = loaded.tokenizer.encode(BASE + "    def pop(self):\n        ", add_special_tokens=False)
    return Prompt("raw", "", tuple(ids), (), forced_text=forced_text)


def test_token_texts_allow_exactly_the_tokens_that_agree(loaded):
    table = token_texts(loaded.tokenizer)
    for remaining in (" resu", "self.it", "x", "(", "ms"):
        want = {
            i
            for i, text in enumerate(table.texts)
            if text and (text.startswith(remaining) or remaining.startswith(text))
        }
        assert set(table.allowed(remaining)) == want and want, remaining
    specials = set(loaded.tokenizer.all_special_ids)
    assert all(table.texts[i] is None for i in specials)


@pytest.mark.parametrize("forced", [" resu", "ret", "self.it"])
def test_decoding_spells_the_forced_text_first_and_leaves_it_out(loaded, forced):
    prompt = _prompt(loaded, forced)
    options = CompletionOptions(max_tokens=10)
    plain = generate(loaded.model, loaded.tokenizer, prompt, options)
    fast = generate(loaded.model, loaded.tokenizer, prompt, options, lookup=LookupParams())
    assert (plain.raw, plain.token_ids) == (fast.raw, fast.token_ids)  # speculation stays greedy-identical
    ((text,), (ids,)) = plain.raw, plain.token_ids
    spelled = loaded.tokenizer.decode(list(ids))
    assert spelled.startswith(forced) and text == spelled[len(forced) :]

    streamed: list[tuple[int, str]] = []
    sampled = generate(
        loaded.model,
        loaded.tokenizer,
        prompt,
        CompletionOptions(max_tokens=6, temperature=1.0, n=3, seed=1),
        on_token=lambda b, _token, text: streamed.append((b, text)),
    )
    assert len(sampled.raw) == 3
    for b, (text, ids) in enumerate(zip(sampled.raw, sampled.token_ids, strict=True)):
        spelled = loaded.tokenizer.decode(list(ids))
        assert spelled.startswith(forced) and text == spelled[len(forced) :]
        assert all(text.startswith(seen) for index, seen in streamed if index == b)  # forced left out


def test_forced_text_no_token_can_spell_ends_with_no_text(loaded):
    prompt = _prompt(loaded, "\u2603")
    result = generate(loaded.model, loaded.tokenizer, prompt, CompletionOptions(max_tokens=4))
    assert (result.raw, result.token_ids, result.finish_reason) == (("",), ((),), "stop")


def test_typing_inside_a_word_reuses_the_whole_prompt(loaded):
    reuse = CompletionService(loaded, kv_reuse=True, speculative=False)
    opts = CompletionOptions(max_tokens=4)
    word = "    return self.items"
    results = []
    for i in range(len("    return s"), len(word) + 1):
        request = FimRequest(prefix=BASE + word[:i], suffix=SUFFIX, language="python")
        results.append((reuse.build(request, opts), reuse.complete(request, opts, cache_key="a.py")))
    for (before, _), (after, result) in itertools.pairwise(results):
        if after.token_ids == before.token_ids:  # the same word: only the forced text changed
            assert result.prefill_tokens == 1 and after.forced_text != before.forced_text
        else:  # a new word began: the prompt grew by the finished one
            assert after.token_ids[: len(before.token_ids)] == before.token_ids
            assert result.reused_tokens == len(before.token_ids)
