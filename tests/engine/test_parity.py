"""Our decoder and loop against transformers: same logits, token-identical greedy output."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.prompt.types import Prompt

LOGIT_ATOL = 1e-4  # fp32, same math in a different op order

ARCHS = ["glm", "glm4", "qwen2", "llama"]
PROMPTS = [
    "def fibonacci(n):\n    ",
    "<|code_prefix|>function add(a, b) {\n<|code_suffix|>\n}\n<|code_middle|>",
    "你好 😀 for i in range(10):",
]


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_match_transformers(tiny_model_factory, arch):
    path = tiny_model_factory(arch)
    ours = load_model(EngineOptions(model=str(path), dtype="float32", quant="none"))
    hf = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    ids = ours.tokenizer.encode(PROMPTS[0])
    with torch.inference_mode():
        expected = hf(torch.tensor([ids])).logits[0]  # [S, V]
        got = ours.model(torch.tensor([ids]), 0, ours.model.new_cache(), last_only=False)[0]
    torch.testing.assert_close(got, expected, atol=LOGIT_ATOL, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_generate(tiny_model_factory, arch):
    path = tiny_model_factory(arch)
    ours = load_model(EngineOptions(model=str(path), dtype="float32", quant="none"))
    hf = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(path))
    max_new = 40
    seen: set[int] = set()
    for prompt in PROMPTS:
        ids = tok.encode(prompt)
        with torch.inference_mode():
            out = hf.generate(
                torch.tensor([ids]),
                max_new_tokens=max_new,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=tok.eos_token_id,
            )[0, len(ids) :].tolist()
        result = generate(
            ours.model,
            ours.tokenizer,
            Prompt("raw", prompt, tuple(ids), ()),
            CompletionOptions(max_tokens=max_new),
        )
        assert list(result.token_ids[0]) == out, prompt
        assert len(out) == max_new
        seen.update(out)
    assert len(seen) >= 5, "degenerate tiny model: the comparison would prove little"
