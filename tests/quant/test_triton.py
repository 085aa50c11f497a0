"""The Triton W4A16 kernel vs the reference, under TRITON_INTERPRET=1 on CPU (small shapes: slow)."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from codegeex_lsp.quant import ops, packing
from codegeex_lsp.quant import reference as R
from tests.quant.conftest import randn

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not importable")

# fp32 inputs use IEEE dots: only summation order differs from the fp32 reference.
TRITON_FP32_RTOL = 1e-5
# fp16 activations and dequantized weights (11-bit mantissa), fp32 accumulation.
TRITON_FP16_RTOL = 2e-3


@pytest.fixture(scope="module")
def triton_mod():
    """The kernel module, (re)imported with the interpreter on so it runs on CPU tensors."""
    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    module = ops.triton_module()
    if not type(module._int4_gemm_kernel).__name__.startswith("Interpreted"):
        module = importlib.reload(module)
    yield module
    if before is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = before


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.mark.parametrize(
    ("n", "k", "g", "m"),
    [
        (1, 32, 32, 1),
        (5, 96, 32, 3),
        (67, 160, 32, 1),
        (7, 192, 64, 5),
        (33, 384, 128, 16),
        (9, 128, 128, 17),
        (3, 544, 32, 2),
        (3, 896, 32, 2),  # the model's K: three super-blocks and the half-block
    ],
)
@pytest.mark.parametrize("mode", ["sym", "asym"])
def test_triton_matches_reference(triton_mod, n: int, k: int, g: int, m: int, mode: str) -> None:
    w = randn(n, k, seed=n + k)
    x = randn(m, k, seed=n + k + 1)
    bias = randn(n, seed=3)
    qw = R.quantize(w, mode, g)
    packed = packing.pack_int4(qw)
    y_ref = R.linear_ref(x, qw, bias)
    y = triton_mod.int4_gemm(x, packed, k, g, bias)
    assert y.shape == (m, n) and y.dtype == torch.float32
    assert _rel(y, y_ref) <= TRITON_FP32_RTOL
    y16 = triton_mod.int4_gemm(x.half(), packed, k, g, None)
    assert y16.dtype == torch.float16
    assert _rel(y16.float(), R.linear_ref(x, qw)) <= TRITON_FP16_RTOL


def test_quant_linear_dispatches_to_triton(triton_mod) -> None:
    from codegeex_lsp.quant import QuantLinear

    linear = torch.nn.Linear(96, 5)
    module = QuantLinear.from_linear(linear, "asym", 32, kernel="triton")
    x = randn(2, 96, seed=4)
    with torch.inference_mode():
        y = module(x)
    assert _rel(y, torch.nn.functional.linear(x, module.dequantize(), module.bias)) <= TRITON_FP32_RTOL
