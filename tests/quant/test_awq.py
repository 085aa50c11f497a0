"""AWQ: activation-aware scales beat plain group-wise quantization where activations have outliers."""

from __future__ import annotations

import torch
from torch import nn

from codegeex_lsp.quant import QuantLinear
from codegeex_lsp.quant import reference as R
from codegeex_lsp.quant.calibration import ActivationCollector, stdlib_calibration_texts
from tests.quant.conftest import randn

OUTLIER_CHANNELS = (3, 40, 77, 150)
OUTLIER_SCALE = 25.0
# AWQ output error must be at most this fraction of plain asym's on held-out rows (measured ~0.5).
AWQ_ERROR_RATIO = 0.8


def _output_error(w_eff: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> float:
    return float((x @ w_eff.T - x @ w.T).norm() / (x @ w.T).norm())


def test_awq_reduces_output_error_on_outlier_channels() -> None:
    w = randn(96, 256, seed=0)
    calib = randn(512, 256, seed=1, outliers=OUTLIER_CHANNELS, outlier_scale=OUTLIER_SCALE)
    held_out = randn(256, 256, seed=2, outliers=OUTLIER_CHANNELS, outlier_scale=OUTLIER_SCALE)
    for g in (32, 128):
        plain = R.fake_quantize(w, "asym", g)
        qw, inv_s = R.awq_quantize(w, calib, g)
        awq = R.dequantize_groupwise(qw) * inv_s[None, :]
        assert _output_error(awq, w, held_out) <= AWQ_ERROR_RATIO * _output_error(plain, w, held_out), g
        assert inv_s[list(OUTLIER_CHANNELS)].max() < inv_s.median()  # outlier channels get scaled up


def test_awq_search_never_worse_than_plain_on_calibration() -> None:
    w = randn(32, 128, seed=3)
    x = randn(64, 128, seed=4)  # no outliers: alpha = 0 (s = 1) is in the grid
    qw, inv_s = R.awq_quantize(w, x, 32)
    awq = R.dequantize_groupwise(qw) * inv_s[None, :]
    assert _output_error(awq, w, x) <= _output_error(R.fake_quantize(w, "asym", 32), w, x) + 1e-6


def test_quant_linear_awq_runs_through_the_kernel() -> None:
    linear = nn.Linear(256, 33)
    with torch.no_grad():
        linear.weight.copy_(randn(33, 256, seed=5))
    calib = randn(128, 256, seed=6, outliers=OUTLIER_CHANNELS, outlier_scale=OUTLIER_SCALE)
    module = QuantLinear.from_linear(linear, "awq", 32, activations=calib)
    assert module.act_scale is not None and module.mode == "awq"
    x = calib[:4]
    with torch.inference_mode():
        y = module(x)
    want = nn.functional.linear(x, module.dequantize(), module.bias)
    assert float((y - want).norm() / want.norm()) <= 1.5e-2


def test_collector_and_stdlib_calibration_text() -> None:
    texts = stdlib_calibration_texts(n_texts=4, max_chars=2000)
    assert len(texts) == 4 and all(0 < len(t) <= 2000 for t in texts)
    assert texts == stdlib_calibration_texts(n_texts=4, max_chars=2000)  # deterministic
    assert any(("def " in t or "import " in t) for t in texts)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 4)))
    with ActivationCollector(model, max_rows=5) as collector:
        for i in range(3):
            model(randn(2, 3, 8, seed=i))
    acts = collector.activations()
    assert set(acts) == {"0", "2.0"}
    assert acts["0"].shape == (5, 8) and acts["2.0"].shape == (5, 16)
    assert not model[0]._forward_pre_hooks  # hooks removed on exit
