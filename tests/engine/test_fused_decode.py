"""The fused int4 decode step (one C++ call per token) against the op-by-op `Transformer.forward`."""

from __future__ import annotations

import pytest
import torch

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine import fused_decode
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.prompt.types import Prompt

STEPS = 24


def _load(tiny_model_factory, tmp_path_factory, arch: str, dtype: str = "auto", quant: str = "int4"):
    cache = tmp_path_factory.mktemp(f"fused-{arch}")
    opts = EngineOptions(model=str(tiny_model_factory(arch)), quant=quant, dtype=dtype, cache_dir=str(cache))
    loaded = load_model(opts)
    _trained_norms(loaded.model)
    return loaded


def _trained_norms(model: torch.nn.Module, spread: float = 0.05) -> None:
    """Give the tiny random models' norm weights a trained model's spread (fixed seed). At exactly 1
    (the random init), the first normed input of a token whose embedding sits on the 8-bit grid of
    the recipe's edge modules has activations exactly halfway between two int8 steps; the fused and
    op-by-op RMSNorms round them apart by one ulp, and half a block flips at once (a 27 % logit move
    for one glm token, the same on the ref, AVX2 and AVX-512 paths). Trained norms have no such ties."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in [*model.named_parameters(), *model.named_buffers()]:
            if "norm" in name and weight.is_floating_point():
                weight.mul_(1 + spread * torch.randn(weight.shape, generator=gen).to(weight.dtype))


def _teacher_forced(loaded, steps: int = STEPS, text: str = "def fibonacci(n):\n    if n < 2:", max_len: int = 128):
    """(op-by-op logits, fused logits, caches) per step, both paths starting each step from the same
    cache (the op-by-op one), so a step's difference is that step's alone."""
    model, tok = loaded.model, loaded.tokenizer
    plan = fused_decode.plan_for(model)
    assert plan is not None, fused_decode.unsupported_reason(model)
    ids = torch.tensor([tok.encode(text)])
    ref_cache, fused_cache = model.new_cache(1, max_len), model.new_cache(1, max_len)
    with torch.inference_mode():
        logits = model(ids, 0, ref_cache)
        pos = ids.shape[1]
        ref, fused = [], []
        for _ in range(steps):
            for mine, theirs in ((fused_cache.k, ref_cache.k), (fused_cache.v, ref_cache.v)):
                for a, b in zip(mine, theirs, strict=True):
                    a.copy_(b)
            token = logits.argmax(-1, keepdim=True)
            logits = model(token, pos, ref_cache)
            out = fused_decode.decode_step(model, fused_cache, token, pos)
            assert out is not None
            ref.append(logits)
            fused.append(out)
            pos += 1
    return torch.cat(ref), torch.cat(fused), ref_cache, fused_cache, pos


def _assert_same_steps(ref: torch.Tensor, fused: torch.Tensor, typical: float, worst: float) -> None:
    """Steps agree to float noise, except a rare one that differs by an int8 activation step (a value
    on a rounding boundary of the kernels' activation quantization lands on the other side). On these
    tiny random models that moves the largest logit by up to ~11 % of the scale: 1 step in 144 for
    qwen2-d32 and for llama, on this code and before it (6 prompts x 24 steps, session 19). A wrong
    rotary, cache write or norm would move every step."""
    scale = ref.abs().max()
    per_step = (fused - ref).abs().amax(-1)
    off = per_step > typical * scale
    assert int(off.sum()) <= max(1, len(per_step) // 20), per_step  # rounding flips are rare
    assert per_step.max() <= worst * scale, per_step
    top2 = ref.topk(2, dim=-1).values
    decisive = (top2[:, 0] - top2[:, 1]) > 0.1 * scale
    assert torch.equal(fused.argmax(-1)[decisive], ref.argmax(-1)[decisive])


@pytest.mark.parametrize("arch", ["qwen2", "qwen2-d32", "llama", "glm"])
def test_fused_step_matches_the_op_by_op_forward(tiny_model_factory, tmp_path_factory, arch):
    loaded = _load(tiny_model_factory, tmp_path_factory, arch)
    assert loaded.model.dtype == torch.float32  # what int4 runs in (auto)
    ref, fused, ref_cache, fused_cache, pos = _teacher_forced(loaded)
    assert fused.shape == ref.shape and fused.dtype == torch.float32
    # fp32 all along: only the order of float sums differs (and int8 activation rounding that follows it)
    _assert_same_steps(ref, fused, typical=1e-4, worst=0.2)
    assert fused_cache.length == ref_cache.length == pos
    for layer in range(len(ref_cache.k)):  # the last step's k/v, in every layer, where forward wrote them
        for mine, theirs in ((fused_cache.k, ref_cache.k), (fused_cache.v, ref_cache.v)):
            torch.testing.assert_close(mine[layer][:, :, pos - 1], theirs[layer][:, :, pos - 1], atol=5e-2, rtol=5e-2)
            assert mine[layer][:, :, pos:].abs().sum() == 0  # nothing beyond it


@pytest.mark.parametrize("arch", ["qwen2", "qwen2-d32"])
def test_fused_attention_over_a_long_cache_matches_the_op_by_op_forward(tiny_model_factory, tmp_path_factory, arch):
    # head_dim 16 runs the generic attention, 32 the register-blocked one, whose output rows stay in
    # registers over blocks of 64 positions: ~300 cached positions cross several blocks
    loaded = _load(tiny_model_factory, tmp_path_factory, arch)
    text = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(14))
    n_prompt = len(loaded.tokenizer.encode(text))
    assert 200 < n_prompt < 440, n_prompt
    ref, fused, _, _, _ = _teacher_forced(loaded, steps=8, text=text, max_len=512)
    _assert_same_steps(ref, fused, typical=1e-4, worst=0.2)


def test_generate_decodes_through_the_fused_step(tiny_model_factory, tmp_path_factory, monkeypatch):
    loaded = _load(tiny_model_factory, tmp_path_factory, "qwen2")
    plan = fused_decode.plan_for(loaded.model)
    calls = []
    real = fused_decode.decode_step

    def counting(model, cache, tokens, pos):
        out = real(model, cache, tokens, pos)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(fused_decode, "decode_step", counting)
    prompt = Prompt("raw", "", tuple(loaded.tokenizer.encode("def add(a, b):\n")), ())
    fused = generate(loaded.model, loaded.tokenizer, prompt, CompletionOptions(max_tokens=16))
    assert plan is not None and calls and all(calls)  # every plain step was one fused call
    monkeypatch.setenv(fused_decode.FUSED_ENV, "0")
    calls.clear()
    plain = generate(loaded.model, loaded.tokenizer, prompt, CompletionOptions(max_tokens=16))
    assert calls and not any(calls)
    assert fused.token_ids == plain.token_ids


def test_models_it_does_not_cover_run_the_op_by_op_forward(tiny_model_factory, tmp_path_factory, monkeypatch):
    float_model = _load(tiny_model_factory, tmp_path_factory, "qwen2", quant="none").model
    assert fused_decode.plan_for(float_model) is None
    assert "int4" in fused_decode.unsupported_reason(float_model)
    bf16 = _load(tiny_model_factory, tmp_path_factory, "qwen2", quant="none", dtype="bfloat16").model
    assert fused_decode.plan_for(bf16) is None
    glm4 = _load(tiny_model_factory, tmp_path_factory, "glm4").model
    assert fused_decode.plan_for(glm4) is None
    assert "post-norms" in fused_decode.unsupported_reason(glm4)
    int4 = _load(tiny_model_factory, tmp_path_factory, "llama").model
    monkeypatch.setenv("CODEGEEX_LSP_KERNEL", "ref")
    assert "not the compiled C++" in fused_decode.unsupported_reason(int4)
    # several candidates or several tokens at once: not the fused step's shape
    cache = int4.new_cache(2, 32)
    assert fused_decode.decode_step(int4, cache, torch.tensor([[1], [2]]), 0) is None


def test_bad_cache_is_a_clear_error_and_the_plan_keeps_serving(tiny_model_factory, tmp_path_factory):
    loaded = _load(tiny_model_factory, tmp_path_factory, "qwen2")
    model = loaded.model
    plan = fused_decode.plan_for(model)
    x = model.tok_embeddings(torch.tensor([[3]]))
    cache = model.new_cache(1, 16)
    with pytest.raises(RuntimeError, match="cache tensors must be contiguous"):
        plan.step(x, 0, [k.bfloat16() for k in cache.k], cache.v)
    with pytest.raises(RuntimeError, match="one k and one v cache tensor per layer"):
        plan.step(x, 0, cache.k[:1], cache.v)
    with pytest.raises(RuntimeError, match="cache tensors must be contiguous"):
        plan.step(x, 16, cache.k, cache.v)  # beyond the cache
    with pytest.raises(RuntimeError, match="one embedding"):
        plan.step(x[..., :3], 0, cache.k, cache.v)
    logits = plan.step(x, 0, cache.k, cache.v)
    assert logits.shape == (1, plan.vocab_size()) and torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ["qwen2", "qwen2-d32", "glm"])
def test_short_prompt_deltas_and_draft_checks_match_the_op_by_op_forward(tiny_model_factory, tmp_path_factory, arch):
    loaded = _load(tiny_model_factory, tmp_path_factory, arch)
    model, tok = loaded.model, loaded.tokenizer
    ids = tok.encode("def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1)")
    head, delta = torch.tensor([ids[:-8]]), torch.tensor([ids[-8:]])  # a cached prefix, then 8 new tokens
    ref_cache, cache = model.new_cache(1, 128), model.new_cache(1, 128)
    with torch.inference_mode():
        model(head, 0, ref_cache)
        model(head, 0, cache)
        start = head.shape[1]
        ref = model(delta, start, ref_cache)
        fused = fused_decode.forward_tokens(model, cache, delta, start)
        assert fused is not None and fused.shape == ref.shape == (1, model.args.vocab_size)
        end = start + 8
        assert cache.length == end
        for mine, theirs in zip(cache.k + cache.v, ref_cache.k + ref_cache.v, strict=True):
            torch.testing.assert_close(mine[:, :, :end], theirs[:, :, :end], atol=5e-2, rtol=5e-2)
        _assert_same_steps(ref, fused, typical=5e-2, worst=5e-2)
        # the speculative check: the last token and a draft, logits for every position
        for mine, theirs in zip(cache.k + cache.v, ref_cache.k + ref_cache.v, strict=True):
            mine.copy_(theirs)
        draft = torch.tensor([[ref.argmax().item(), 5, 6, 7]])
        ref_rows = model(draft, end, ref_cache, last_only=False)[0]
        rows = fused_decode.forward_tokens(model, cache, draft, end, last_only=False)
        assert rows.shape == ref_rows.shape == (4, model.args.vocab_size)
        assert cache.length == end + 4
        _assert_same_steps(ref_rows, rows, typical=1e-4, worst=5e-2)
        # longer prompts run forward(): ATen's attention is faster there
        assert fused_decode.forward_tokens(model, cache, torch.tensor([ids[:10]]), 0) is None


def test_speculative_generation_checks_drafts_through_the_fused_step(tiny_model_factory, tmp_path_factory, monkeypatch):
    from codegeex_lsp.engine.decode import LookupParams

    loaded = _load(tiny_model_factory, tmp_path_factory, "qwen2")
    calls: list[int] = []
    real = fused_decode.forward_tokens

    def counting(model, cache, tokens, start, last_only=True):
        out = real(model, cache, tokens, start, last_only)
        calls.append(tokens.shape[1] if out is not None else 0)
        return out

    monkeypatch.setattr(fused_decode, "forward_tokens", counting)
    text = "x = [1, 2, 3]\ny = [1, 2, 3]\nz = [1, 2, 3]\nw = ["
    prompt = Prompt("raw", "", tuple(loaded.tokenizer.encode(text)), ())
    options = CompletionOptions(max_tokens=24)
    fused = generate(loaded.model, loaded.tokenizer, prompt, options, lookup=LookupParams())
    assert calls[0] == 0  # the prompt (> MAX_FUSED_TOKENS) ran forward()
    assert calls[1:] and 0 not in calls[1:]  # every plain step and draft check after it: fused
    assert any(n > 1 for n in calls[1:])  # at least one draft was checked in one call
    monkeypatch.setenv(fused_decode.FUSED_ENV, "0")
    plain = generate(loaded.model, loaded.tokenizer, prompt, options, lookup=LookupParams())
    assert fused.token_ids == plain.token_ids
