"""Next-token choice: the NumPy argmax is torch's, and sampling is reproducible."""

from __future__ import annotations

import torch

from codegeex_lsp.engine.sampling import argmax, sample


def test_argmax_is_torchs_on_every_shape_tie_and_nan() -> None:
    g = torch.Generator().manual_seed(0)
    for shape in [(151936,), (1, 151936), (3, 1000), (9, 7)]:
        x = torch.randn(shape, generator=g)
        assert torch.equal(argmax(x), x.argmax(dim=-1))
        assert argmax(x).dtype == torch.int64
    ties = torch.tensor([[1.0, 5.0, 5.0, 2.0], [7.0, 7.0, 7.0, 7.0]])
    assert argmax(ties).tolist() == [1, 0] == ties.argmax(dim=-1).tolist()  # the first of equal ones
    nan = torch.tensor([[1.0, float("nan"), 9.0]])
    assert argmax(nan).tolist() == nan.argmax(dim=-1).tolist() == [1]
    strided = torch.randn(6, 50, generator=g)[::2, 1:]
    assert torch.equal(argmax(strided), strided.argmax(dim=-1))
    with torch.inference_mode():
        inf = torch.randn(2, 300, generator=g)
        assert torch.equal(argmax(inf), inf.argmax(dim=-1))
    bf16 = torch.randn(2, 300, generator=g).bfloat16()  # not fp32: torch's own
    assert torch.equal(argmax(bf16), bf16.argmax(dim=-1))


def test_greedy_and_seeded_sampling() -> None:
    logits = torch.randn(2, 500, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sample(logits, 0.0, 1.0, None), logits.argmax(dim=-1))
    a = sample(logits, 0.8, 0.9, torch.Generator().manual_seed(5))
    b = sample(logits, 0.8, 0.9, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (2,)
