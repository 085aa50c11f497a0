"""The fused int4 decode step on the real embedded model: as close to the op-by-op path as that path
is to itself under float noise.

The int4 kernels quantize activations to int8, so the last bit of a float sum can move a value to the
next int8 step; over 24 layers that moves the logits of a real model by ~1 % at every step whichever
order the sums take. The test measures that floor in the same run (the op-by-op path with its RMSNorm
statistics taken in float64, a change of one rounding) and holds the fused step to it.
"""

from __future__ import annotations

import pytest
import torch

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine import fused_decode
from codegeex_lsp.engine import model as model_module
from codegeex_lsp.engine.load import load_model

pytestmark = pytest.mark.slow

PROMPTS = (
    "def fibonacci(n):\n    ",
    "function quickSort(arr) {\n",
    "#include <vector>\nint main() {\n",
    'package main\n\nimport "fmt"\n\nfunc main() {\n',
)
STEPS = 16


def _float64_rmsnorm(self, x: torch.Tensor) -> torch.Tensor:
    x64 = x.double()
    x64 = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + self.eps)
    return self.weight * x64.to(x.dtype)


def _per_step(model, tokenizer, other) -> tuple[list[float], int, int]:
    """Max |logit difference| per step between forward() and `other`, each step from forward's cache."""
    diffs, agree, steps = [], 0, 0
    with torch.inference_mode():
        for text in PROMPTS:
            ids = torch.tensor([tokenizer.encode(text)])
            ref_cache, cache = model.new_cache(1, 256), model.new_cache(1, 256)
            logits = model(ids, 0, ref_cache)
            pos = ids.shape[1]
            for _ in range(STEPS):
                for mine, theirs in zip(cache.k + cache.v, ref_cache.k + ref_cache.v, strict=True):
                    mine.copy_(theirs)
                token = logits.argmax(-1, keepdim=True)
                logits = model(token, pos, ref_cache)
                out = other(model, cache, token, pos)
                diffs.append((out - logits).abs().max().item())
                agree += int(out.argmax() == logits.argmax())
                steps += 1
                pos += 1
    return sorted(diffs), agree, steps


def test_fused_step_is_within_the_op_by_op_paths_own_noise(monkeypatch):
    loaded = load_model(EngineOptions(quant="int4", threads=2))
    model = loaded.model
    assert fused_decode.plan_for(model) is not None, fused_decode.unsupported_reason(model)

    def fused(m, cache, token, pos):
        out = fused_decode.decode_step(m, cache, token, pos)
        assert out is not None
        return out

    def perturbed(m, cache, token, pos):
        with monkeypatch.context() as patch:
            patch.setattr(model_module.RMSNorm, "forward", _float64_rmsnorm)
            return m(token, pos, cache)

    noise, noise_agree, n = _per_step(model, loaded.tokenizer, perturbed)
    diffs, agree, _ = _per_step(model, loaded.tokenizer, fused)
    median = lambda values: values[len(values) // 2]  # noqa: E731
    assert median(noise) > 0  # the floor is real: one rounding moves the logits
    assert median(diffs) <= 2 * median(noise) + 1e-3, (diffs, noise)
    assert diffs[-1] <= 3 * noise[-1] + 1e-3, (diffs, noise)
    assert agree >= min(noise_agree, n) - 2 and agree >= 0.9 * n



def test_chunking_of_the_output_rows_never_changes_a_step():
    """Every output row is computed alone, so how the rows are cut into chunks between the threads
    (here the 151,936-row output projection in 9,496-row chunks or down to 32-row ones) cannot change a bit."""
    loaded = load_model(EngineOptions(quant="int4", threads=2))
    model = loaded.model
    plan = fused_decode.plan_for(model)
    assert plan is not None, fused_decode.unsupported_reason(model)
    ids = torch.tensor([loaded.tokenizer.encode(PROMPTS[0])])
    cache = model.new_cache(1, 64)
    with torch.inference_mode():
        token = model(ids, 0, cache).argmax(-1, keepdim=True)
        pos = ids.shape[1]
        x = model.tok_embeddings(token)
        outs = []
        for chunk_bytes in (0, 1, 64 * 1024, 1 << 30):
            previous = plan.set_chunk_bytes(chunk_bytes)
            copy_k, copy_v = [k.clone() for k in cache.k], [v.clone() for v in cache.v]
            outs.append((plan.step(x, pos, copy_k, copy_v), copy_k, copy_v))
            plan.set_chunk_bytes(previous)
    assert previous == 0  # the default (no byte bound), put back
    first, k0, v0 = outs[0]
    for logits, k, v in outs[1:]:
        assert torch.equal(logits, first)
        assert all(torch.equal(a, b) for a, b in zip(k + v, k0 + v0, strict=True))
    with pytest.raises(RuntimeError, match="negative"):
        plan.set_chunk_bytes(-1)
