"""The fast GPTQ path: inverse Cholesky without cholesky_inverse, row chunks, record-only lm head."""

from __future__ import annotations

import pytest
import torch

from codegeex_lsp.quant import gptq
from codegeex_lsp.quant.calibration import collect_linear_hessians


def _hessian(k: int, rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=g) * torch.rand(k, generator=g).mul(3).add(0.1)
    h = (x.T @ x).double()
    return h + 0.01 * torch.diagonal(h).mean() * torch.eye(k, dtype=torch.float64)


@pytest.mark.parametrize("k", [64, 300, 777])
def test_inverse_cholesky_upper_matches_the_definition(k: int) -> None:
    h = _hessian(k, k // 2, seed=k)  # rank-deficient before damping, like few calibration tokens
    expected = torch.linalg.cholesky(torch.linalg.inv(h), upper=True)
    got = gptq._inverse_cholesky_upper(h).double()
    assert torch.allclose(got.triu(), got)
    assert torch.allclose(got, expected, rtol=2e-3, atol=2e-3 * expected.abs().max().item())


@pytest.mark.parametrize("act_order", [False, True])
def test_row_chunks_give_the_same_codes_as_one_sweep(monkeypatch, act_order: bool) -> None:
    h = _hessian(128, 200, seed=1)
    w = torch.randn(97, 128, generator=torch.Generator().manual_seed(2)) * 0.05
    whole = gptq.gptq_quantize(w, h, 32, act_order=act_order)
    monkeypatch.setattr(gptq, "ROW_CHUNK_ELEMENTS", 10 * gptq.BLOCK)  # 10 rows per chunk, last one 7
    chunked = gptq.gptq_quantize(w, h, 32, act_order=act_order)
    assert torch.equal(whole.q, chunked.q)
    assert torch.equal(whole.scale, chunked.scale) and torch.equal(whole.zero, chunked.zero)


def test_record_only_head_keeps_its_hessian_and_skips_its_output() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1000))
    batches = [torch.randn(5, 16), torch.randn(3, 16)]
    outputs = []
    full = collect_linear_hessians(model, batches, forward=lambda m, b: outputs.append(m(b)))
    skipped = collect_linear_hessians(
        model, batches, forward=lambda m, b: outputs.append(m(b)), record_only=frozenset({"2"})
    )
    assert full.keys() == skipped.keys() == {"0", "2"}
    assert all(torch.allclose(full[k], skipped[k]) for k in full)
    assert [tuple(o.shape) for o in outputs] == [(5, 1000), (3, 1000), (0, 1000), (0, 1000)]
