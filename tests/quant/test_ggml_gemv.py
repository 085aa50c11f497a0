"""llama.cpp's GEMV as `bench kernels` drives it: ggml through ctypes computes x @ W.T for real.

Two tolerances: against x @ dequant(W).T (ggml's own weights) only the Q8 rounding of the activation
remains, ~0.5%; against x @ W.T the 4-bit weight error adds ~9% for Q4_0 on Gaussian weights.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.quant.conftest import randn

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama_cpp (llama-cpp-python) is not installed"
)

VS_DEQUANT = 0.02
VS_FLOAT = 0.15


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def G():
    from codegeex_lsp.bench import ggml_gemv

    reason = ggml_gemv.unavailable_reason()
    assert reason is None, reason  # llama_cpp is installed: its ggml must bind
    return ggml_gemv


@pytest.mark.parametrize("rows", [1, 4])
@pytest.mark.parametrize(
    ("qtype", "n", "k", "repack"),
    [
        ("q4_0", 64, 256, True),
        ("q4_0", 96, 896, True),
        ("q4_0", 96, 896, False),  # plain ggml vec_dot path
        ("q4_0", 36, 256, True),  # N % 8 != 0: ggml does not repack, plain CPU buffer instead
        ("q4_k", 64, 512, True),
    ],
)
def test_gemv_matches_float_matmul(G, qtype: str, n: int, k: int, repack: bool, rows: int) -> None:
    w = randn(n, k, seed=n + k) * 0.02
    x = randn(rows, k, seed=rows)
    with G.GgmlGemv(w, qtype, rows=rows, n_threads=2, repack=repack) as op:
        y = op(x)
        assert y.shape == (rows, n)
        assert _rel(y, x @ op.dequantized().T) < VS_DEQUANT
        assert _rel(y, x @ w.T) < VS_FLOAT
        op.run()  # the same graph again: same result
        assert torch.equal(op.output(), y)
        if not repack or n % 8:
            assert op.buffer_type == "CPU"


def test_cycles_through_weight_copies(G) -> None:
    w, x = randn(32, 64, seed=1), randn(2, 64, seed=2)
    with G.GgmlGemv(w, "q4_0", rows=2, copies=3) as op:
        op.set_input(x)
        outs = []
        for _ in range(3):
            op.run()
            outs.append(op.output())
    assert all(torch.equal(o, outs[0]) for o in outs)
    assert _rel(outs[0], x @ w.T) < VS_FLOAT


def test_gemv_helper_matches_the_class(G) -> None:
    w, x = randn(16, 64, seed=3), randn(1, 64, seed=4)
    with G.GgmlGemv(w, "q4_0") as op:
        assert torch.equal(G.gemv(w, x), op(x))


@pytest.mark.parametrize(
    ("qtype", "shape", "message"),
    [
        ("q4_0", (64, 100), "divisible by 32, got K=100"),
        ("q4_k", (96, 896), "divisible by 256, got K=896"),
        ("q8_0", (64, 256), "unknown ggml type"),
        ("q4_0", (256,), "must be 2-D"),
    ],
)
def test_bad_shapes_are_refused_clearly(G, qtype: str, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        G.GgmlGemv(torch.zeros(shape), qtype)


def test_input_shape_is_checked(G) -> None:
    with G.GgmlGemv(torch.ones(8, 32), rows=2) as op, pytest.raises(ValueError, match=r"x must be \[2, 32\]"):
        op.set_input(torch.ones(1, 32))


def test_missing_package_is_a_clear_error(G, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(G.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(G.GgmlUnavailable, match="llama_cpp is not installed"):
        G.library_dir()
