"""Prompt-lookup speculation: greedy output identical to plain greedy, drafts actually accepted."""

from __future__ import annotations

import pytest

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import LookupParams, PromptLookup, generate
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.engine.service import CompletionService
from codegeex_lsp.postprocess.early_stop import StopSpec
from codegeex_lsp.prompt.types import FimRequest, Prompt

PROMPTS = [
    "def fibonacci(n):\n    ",
    "def add(a, b):\n    return a + b\n\n\ndef add(a, b):\n    return a + b\n\n\ndef add(",
    "for i in range(10):\n    print(i)\nfor i in range(10):\n    print(i)\nfor i in range(10):\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.",
    "function add(a, b) {\n  return a + b;\n}\nconsole.log(add(1, 2));\nconsole.log(add(",
    "x = 1\n" * 12,
    "import os\nimport sys\n\nfor i in range(10):\n    print(i, os.getcwd(), sys.argv)\n" * 2,
    "你好，世界 😀 — unicode text in a comment\n你好，世界",
    "<|code_prefix|>fn add(a: i32, b: i32) -> i32 {\n<|code_suffix|>\n}\n<|code_middle|>",
]
LOOKUPS = [
    LookupParams(),
    LookupParams(max_draft_tokens=2, max_ngram=2, min_ngram=1),
    LookupParams(max_draft_tokens=16),
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["glm", "qwen2", "llama"])
def loaded(request, tiny_model_factory):
    return load_model(
        EngineOptions(model=str(tiny_model_factory(request.param)), dtype="float32", quant="none")
    )


DEFAULT_LOOKUP = LookupParams()


def _prompt(ids, stop_token_ids=()) -> Prompt:
    return Prompt("raw", "", tuple(ids), tuple(stop_token_ids))


def _pair(loaded, ids, lookup=DEFAULT_LOOKUP, stop_token_ids=(), stop=None, **options):
    prompt, opts = _prompt(ids, stop_token_ids), CompletionOptions(**options)
    plain = generate(loaded.model, loaded.tokenizer, prompt, opts, stop=stop)
    fast = generate(loaded.model, loaded.tokenizer, prompt, opts, stop=stop, lookup=lookup)
    return plain, fast


def _candidates(result):
    """What a generation decoded: the raw texts, their token ids, how they ended."""
    return result.raw, result.token_ids, result.finish_reason


@pytest.mark.parametrize("lookup", LOOKUPS, ids=["default", "short", "long"])
def test_speculative_greedy_equals_plain_greedy(loaded, lookup):
    drafted = accepted = 0
    for prompt in PROMPTS:
        ids = loaded.tokenizer.encode(prompt, add_special_tokens=False)
        plain, fast = _pair(loaded, ids, lookup, max_tokens=48)
        assert _candidates(fast) == _candidates(plain), prompt
        assert fast.accepted_tokens <= fast.draft_tokens
        drafted += fast.draft_tokens
        accepted += fast.accepted_tokens
        if fast.accepted_tokens:
            assert fast.forward_passes < plain.forward_passes
    assert drafted > 0
    assert accepted > 0, "no draft was ever accepted: the speculative path went untested"


@pytest.mark.parametrize("max_new", [1, 2, 3, 5, 8, 13])
def test_speculative_respects_max_tokens(loaded, max_new):
    ids = loaded.tokenizer.encode(PROMPTS[5], add_special_tokens=False)
    plain, fast = _pair(loaded, ids, max_tokens=max_new)
    assert _candidates(fast) == _candidates(plain)
    assert len(fast.token_ids[0]) <= max_new


def test_speculative_stops_like_plain(loaded):
    ids = loaded.tokenizer.encode(PROMPTS[2], add_special_tokens=False)
    free = generate(loaded.model, loaded.tokenizer, _prompt(ids), CompletionOptions(max_tokens=40))
    stop_id = free.token_ids[0][len(free.token_ids[0]) // 2]
    needle = free.raw[0][5:8]
    cases = [
        dict(stop_token_ids=(stop_id,)),
        dict(stop=StopSpec((needle,) if needle.strip() else (), False)),
        dict(stop=StopSpec((), True)),
    ]
    for case in cases:
        plain, fast = _pair(loaded, ids, max_tokens=40, **case)
        assert _candidates(fast) == _candidates(plain), case
    lines = {"n": 0}

    def stop_on_second_line(text: str) -> bool:
        lines["n"] += 1
        return text.count("\n") >= 2

    plain, fast = _pair(
        loaded, ids, LookupParams(), stop=StopSpec((), False, stop_on_second_line), max_tokens=40
    )
    assert _candidates(fast) == _candidates(plain)


def test_streaming_and_cancellation_with_speculation(loaded):
    ids = loaded.tokenizer.encode(PROMPTS[5], add_special_tokens=False)
    seen: list[int] = []
    result = generate(
        loaded.model,
        loaded.tokenizer,
        _prompt(ids),
        CompletionOptions(max_tokens=20),
        on_token=lambda _b, token, _text: seen.append(token),
        lookup=LookupParams(),
    )
    assert seen == list(result.token_ids[0])
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    cut = generate(
        loaded.model,
        loaded.tokenizer,
        _prompt(ids),
        CompletionOptions(max_tokens=40),
        is_cancelled=cancelled,
        lookup=LookupParams(),
    )
    assert cut.finish_reason == "cancelled"
    assert cut.token_ids[0] == result.token_ids[0][: len(cut.token_ids[0])]


def test_sampling_and_candidates_bypass_speculation(loaded):
    ids = loaded.tokenizer.encode(PROMPTS[5], add_special_tokens=False)
    sampled = dict(max_tokens=12, temperature=1.2, top_p=0.9, seed=3, n=2)
    plain, fast = _pair(loaded, ids, **sampled)
    assert _candidates(fast) == _candidates(plain)
    assert fast.draft_tokens == 0
    plain, fast = _pair(loaded, ids, max_tokens=12, n=3)
    assert _candidates(fast) == _candidates(plain) and fast.draft_tokens == 0


def test_speculation_with_reuse_through_the_service(loaded):
    both = CompletionService(loaded, kv_reuse=True, speculative=True)
    plain = CompletionService(loaded, kv_reuse=False, speculative=False)
    opts = CompletionOptions(max_tokens=24)
    prefix = "def add(a, b):\n    return a + b\n\n\n"
    drafted = 0
    for ch in "def add(a, b):":
        prefix += ch
        request = FimRequest(prefix=prefix, suffix="\n\nprint(add(1, 2))\n", language="python", mode="BLOCK")
        got = both.complete(request, opts, cache_key="a.py")
        assert got.raw == plain.complete(request, opts, cache_key="a.py").raw
        drafted += got.draft_tokens
    assert drafted > 0


def test_prompt_lookup_drafts_from_the_latest_match():
    lookup = PromptLookup([1, 2, 3, 4, 9, 2, 3, 5, 6, 7], LookupParams(max_draft_tokens=3, max_ngram=2))
    assert lookup.draft(3) == []  # 7 never occurred before the end
    lookup.append(2)
    assert lookup.draft(3) == [3, 5, 6]  # latest "2" is followed by 3 5 6
    lookup.append(3)
    assert lookup.draft(2) == [5, 6]  # "2 3" latest at positions 5-6
    lookup.append(4)
    assert lookup.draft(8) == [9, 2, 3, 5, 6, 7, 2, 3]  # "3 4" only at the start
    assert lookup.draft(0) == []
