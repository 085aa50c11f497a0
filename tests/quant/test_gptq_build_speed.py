"""The faster int4 build's math against plain references: upper-triangle Hessian sums, the
threaded summer, the in-place clip search, blocked error feedback, and linears on worker threads."""

from __future__ import annotations

import pytest
import torch

from codegeex_lsp.quant import gptq
from codegeex_lsp.quant.calibration import (
    HessianCollector,
    add_upper_gram_,
    block_bounds,
    collect_linear_hessians,
    mirror_upper_,
)
from codegeex_lsp.quant.reference import QMAX, _to_fp16_exact
from tests.quant.conftest import randn

HESSIAN_RTOL = 1e-5  # float32 sums of O(100) products against float64


@pytest.mark.parametrize("k", [1, 7, 608, 1000, 1217])
def test_upper_block_sums_mirror_to_x_transpose_x(k: int) -> None:
    bounds = block_bounds(k)
    assert bounds[0] == 0 and bounds[-1] == k and sorted(set(bounds)) == bounds
    h = torch.zeros(k, k)
    expected = torch.zeros(k, k, dtype=torch.float64)
    for seed, rows in enumerate((5, 33, 1)):
        x = randn(rows, k, seed=seed)
        add_upper_gram_(h, x, bounds)
        expected += x.double().T @ x.double()
    got = mirror_upper_(h, bounds)
    assert torch.equal(got, got.T)
    torch.testing.assert_close(got.double(), expected, rtol=HESSIAN_RTOL, atol=HESSIAN_RTOL * k)


class _Mlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Linear(24, 1300)  # 1300 inputs below: two block rows
        self.down = torch.nn.Linear(1300, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x))
        out = self.down(h)
        h.mul_(0.0)  # an activation changed in place after its linear read it
        return out


@pytest.mark.parametrize("threads", [2, 3])
def test_summing_thread_gives_the_inline_sums_and_restores_threads(threads: int) -> None:
    torch.manual_seed(0)
    model = _Mlp().eval()
    batches = [randn(n, 24, seed=n) for n in (9, 40, 3)]
    with torch.inference_mode():
        with HessianCollector(model, threads=1) as inline:
            for b in batches:
                model(b)
        with HessianCollector(model, threads=threads) as threaded:
            for b in batches:
                model(b)
            assert torch.get_num_threads() == threads - 1  # the forward's share
    assert torch.get_num_threads() == 2  # conftest's setting, back after the summer stopped
    x = torch.cat(batches)
    h_down = torch.relu(model.up(x)).detach().double()
    for got in (inline.hessians(), threaded.hessians()):
        torch.testing.assert_close(got["up"].double(), x.double().T @ x.double(), rtol=HESSIAN_RTOL, atol=1e-3)
        torch.testing.assert_close(got["down"].double(), h_down.T @ h_down, rtol=HESSIAN_RTOL, atol=1e-3)


def test_a_failing_sum_is_raised_not_swallowed(monkeypatch) -> None:
    import codegeex_lsp.quant.calibration as calibration

    def broken(h, x, bounds):
        raise RuntimeError("boom")

    monkeypatch.setattr(calibration, "add_upper_gram_", broken)
    model = _Mlp().eval()
    with pytest.raises(RuntimeError, match="summing calibration Hessians failed: boom"):
        collect_linear_hessians(model, [randn(4, 24, seed=1)] * 3)
    assert torch.get_num_threads() == 2


def _clip_reference(w: torch.Tensor, grid: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The search one candidate at a time with fresh tensors and a running strict `<` (v1's code)."""
    w_min = w.amin(dim=-1).clamp(max=0.0)
    w_max = w.amax(dim=-1).clamp(min=0.0)
    best_err = torch.full_like(w_min, float("inf"))
    best_scale = torch.zeros_like(w_min)
    best_zero = torch.zeros_like(w_min)
    for shrink in grid:
        scale = _to_fp16_exact((w_max - w_min) * shrink / QMAX)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.round(-w_min * shrink / safe).clamp(0, QMAX)
        q = (torch.round(w / safe[:, None]) + zero[:, None]).clamp(0, QMAX)
        err = ((q - zero[:, None]) * scale[:, None] - w).pow(2).sum(dim=-1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
        best_zero = torch.where(better, zero, best_zero)
    return best_scale, best_zero


@pytest.mark.parametrize("rows", [1, 3, 257])
def test_clip_search_matches_the_one_candidate_at_a_time_reference(rows: int) -> None:
    w = randn(rows, 32, seed=rows) * 0.05
    w[0, 5] = 0.9  # an outlier worth clipping
    if rows > 2:
        w[1] = 0.0  # an all-zero group: scale 0
        w[2] = w[2].abs()  # all positive: zero point at 0
    for grid in (gptq.CLIP_GRID, (1.0,), (1.0, 0.9, 0.9, 0.5)):  # ties: the first one wins
        scale, zero = gptq.clipped_asym_params(w, grid)
        ref_scale, ref_zero = _clip_reference(w, grid)
        assert torch.equal(scale, ref_scale) and torch.equal(zero, ref_zero)


def _gptq_reference(w: torch.Tensor, h: torch.Tensor, group_size: int) -> torch.Tensor:
    """Unblocked GPTQ in float64 (no act order, no damping change): one column at a time, its error
    spread over all later columns through U, the upper Cholesky factor of H^-1. Codes [N, K]."""
    w = w.double().clone()
    h = h.double() + gptq.DAMP * torch.diagonal(h).double().mean() * torch.eye(h.shape[0], dtype=torch.float64)
    u = torch.linalg.cholesky(torch.linalg.inv(h), upper=True)
    q = torch.empty(w.shape)
    for col in range(w.shape[1]):
        if col % group_size == 0:
            scale, zero = gptq.clipped_asym_params(w[:, col : col + group_size].float())
            scale, zero = scale.double(), zero.double()
        codes = (torch.round(w[:, col] / scale) + zero).clamp(0, QMAX)
        q[:, col] = codes.float()
        err = (w[:, col] - (codes - zero) * scale) / u[col, col]
        w[:, col + 1 :] -= err[:, None] * u[col, col + 1 :][None, :]
    return q


CODE_AGREEMENT = 0.99  # float32 blocked vs float64 unblocked: a few codes sit on a rounding edge


@pytest.mark.parametrize("k", [64, 320])  # 320: blocks of 128, a last block of 64, runs of INNER
def test_blocked_feedback_matches_unblocked_gptq(k: int) -> None:
    w = randn(37, k, seed=k) * 0.05
    x = randn(4 * k, k, seed=k + 1) @ (torch.eye(k) + 0.3 * randn(k, k, seed=k + 2))  # correlated inputs
    h = x.T @ x
    got = gptq.gptq_quantize(w, h, 32).q.float()
    agree = (got == _gptq_reference(w, h, 32)).float().mean().item()
    assert agree >= CODE_AGREEMENT, agree


def test_linears_on_worker_threads_equal_one_by_one(monkeypatch) -> None:
    monkeypatch.setattr(gptq, "JOB_ROWS", 40)  # the tall weight goes in parts of 40, 40, 20 rows
    jobs = []
    for seed, (n, k) in enumerate([(100, 64), (8, 96), (33, 64)]):
        x = randn(3 * k, k, seed=seed + 10)
        jobs.append((randn(n, k, seed=seed) * 0.05, x.T @ x, 32))
    torch.set_num_threads(1)  # the workers' setting, so the one-by-one results are comparable
    expected = [gptq.gptq_quantize(w, h, g, act_order=True) for w, h, g in jobs]
    torch.set_num_threads(2)
    got = list(gptq.gptq_quantize_many(jobs, act_order=True, workers=2))
    assert torch.get_num_threads() == 2
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a.q, b.q) and torch.equal(a.scale, b.scale) and torch.equal(a.zero, b.zero)


def test_a_failing_linear_stops_the_workers_and_raises() -> None:
    good = (randn(8, 64, seed=1), torch.eye(64), 32)
    bad = (randn(8, 64, seed=2), torch.eye(32), 32)  # a Hessian of the wrong shape
    results = gptq.gptq_quantize_many([good, bad, good], workers=2)
    assert next(results).q.shape == (8, 64)
    with pytest.raises(ValueError, match="hessian must be"):
        next(results)
    assert torch.get_num_threads() == 2
