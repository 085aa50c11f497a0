"""Decode-loop behaviour on a tiny model: stops, candidates, sampling, streaming, cancellation."""

from __future__ import annotations

import pytest

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.postprocess.early_stop import cut_at_stop
from codegeex_lsp.prompt.types import Prompt


@pytest.fixture(scope="module")
def tiny(tiny_glm_dir):
    return load_model(EngineOptions(model=str(tiny_glm_dir), dtype="float32", quant="none"))


@pytest.fixture(scope="module")
def prompt_ids(tiny):
    return tiny.tokenizer.encode("def fibonacci(n):\n    ")


def _prompt(ids, stop_token_ids=(), stop_strings=()) -> Prompt:
    return Prompt("raw", "", tuple(ids), tuple(stop_token_ids), tuple(stop_strings))


def _greedy(tiny, ids, stop_token_ids=(), stop_strings=(), **options):
    prompt = _prompt(ids, stop_token_ids, stop_strings)
    return generate(tiny.model, tiny.tokenizer, prompt, CompletionOptions(**options))


def test_stop_token_ends_candidate_and_is_excluded(tiny, prompt_ids):
    free = _greedy(tiny, prompt_ids, max_tokens=20)
    stop_at = free.token_ids[0][5]
    first = free.token_ids[0].index(stop_at)
    got = _greedy(tiny, prompt_ids, max_tokens=20, stop_token_ids=(stop_at,))
    assert got.token_ids[0] == free.token_ids[0][:first]
    assert got.generated_tokens == first
    assert got.finish_reason == "stop"
    assert free.finish_reason == "length"


def test_stop_string_cuts_text(tiny, prompt_ids):
    free = _greedy(tiny, prompt_ids, max_tokens=20)
    needle = free.raw[0][6:9]
    assert needle, "tiny model produced too little text to test stop strings"
    got = _greedy(tiny, prompt_ids, max_tokens=20, stop_strings=(needle,))
    assert got.raw[0] == free.raw[0][: free.raw[0].index(needle)]
    assert got.finish_reason == "stop"


def test_max_tokens_respected(tiny, prompt_ids):
    result = _greedy(tiny, prompt_ids, max_tokens=7)
    assert len(result.token_ids[0]) == result.generated_tokens == 7
    assert result.prompt_tokens == result.prefill_tokens == len(prompt_ids)
    assert result.forward_passes == 6  # the last sampled token is never fed back


def test_n_greedy_candidates_equal_single(tiny, prompt_ids):
    one = _greedy(tiny, prompt_ids, max_tokens=12)
    three = _greedy(tiny, prompt_ids, max_tokens=12, n=3)
    assert three.token_ids == one.token_ids * 3
    assert three.raw == one.raw * 3


def test_sampling_is_seeded_and_diverse(tiny, prompt_ids):
    options = dict(max_tokens=16, temperature=1.5, top_p=0.95, n=4, seed=7)
    a = _greedy(tiny, prompt_ids, **options).token_ids
    b = _greedy(tiny, prompt_ids, **options).token_ids
    assert a == b and len(a) == 4
    assert len(set(a)) > 1


def test_top_p_tiny_equals_greedy(tiny, prompt_ids):
    greedy = _greedy(tiny, prompt_ids, max_tokens=10)
    nucleus = _greedy(tiny, prompt_ids, max_tokens=10, temperature=1.0, top_p=1e-6, seed=1)
    assert nucleus.token_ids == greedy.token_ids


def test_streaming_callback_sees_every_token(tiny, prompt_ids):
    seen: list[tuple[int, int, str]] = []
    result = generate(
        tiny.model,
        tiny.tokenizer,
        _prompt(prompt_ids),
        CompletionOptions(max_tokens=9),
        on_token=lambda b, t, text: seen.append((b, t, text)),
    )
    assert [t for _, t, _ in seen] == list(result.token_ids[0])
    assert seen[-1][2] == result.raw[0]


def test_cancellation_stops_within_one_token(tiny, prompt_ids):
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    result = generate(
        tiny.model,
        tiny.tokenizer,
        _prompt(prompt_ids),
        CompletionOptions(max_tokens=50),
        is_cancelled=cancelled,
    )
    assert result.finish_reason == "cancelled"
    assert len(result.token_ids[0]) == 3


def test_prompt_longer_than_context_is_an_error(tiny):
    with pytest.raises(ValueError, match="does not fit"):
        _greedy(tiny, [1] * (tiny.model.max_seq_len + 1), max_tokens=4)


def test_generation_capped_by_context(tiny):
    ids = [5] * (tiny.model.max_seq_len - 3)
    result = _greedy(tiny, ids, max_tokens=50)
    assert len(result.token_ids[0]) <= 3


@pytest.mark.parametrize(
    ("text", "stops", "single_line", "cut"),
    [
        ("foo)\nbar", (), True, 4),  # first newline after text
        ("\n    return x\n", (), True, 13),  # leading blank lines do not end the line
        ("  \n", (), True, None),  # nothing but whitespace yet: keep going
        ("a = 1```\n", ("```",), False, 5),
        ("a = 1\n```", ("```",), True, 5),  # the earliest stop wins
        ("abc", ("zz",), False, None),
    ],
)
def testcut_at_stop(text, stops, single_line, cut):
    assert cut_at_stop(text, stops, single_line) == cut
