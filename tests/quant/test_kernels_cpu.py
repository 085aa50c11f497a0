"""C++ kernels: scalar _ref vs AVX2 twin vs the torch reference vs an fp64 dot, on odd sizes.

Skipped only when codegeex_lsp._kernels did not build; the fallback path (warning + reference) is
tested unconditionally at the bottom.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from codegeex_lsp.quant import ops, packing
from codegeex_lsp.quant import reference as R
from tests.quant.conftest import randn

# ref / avx2 vs the kernel's own arithmetic in fp64 (int8 activations, exact integer sums): only
# fp32 rounding of ~K/G group terms remains. Relative to max |y| of the case.
KERNEL_VS_FP64_RTOL = 2e-6
# avx2 vs scalar ref: same math, different fp32 summation order.
AVX2_VS_REF_RTOL = 2e-6
# kernel vs the fp32 dequantize-then-matmul reference: each activation moves by at most half an int8
# step (da / 2) of its group, so |dy| <= sum_k |w_k| * da_k * ACT_ROUNDING_STEPS (+ fp32 noise).
ACT_ROUNDING_STEPS = 0.5 + 1e-4
# the same on N(0, 1) activations without outliers, as a relative Frobenius error.
ACT_INT8_REL_TOL = 1.5e-2

needs_ext = pytest.mark.skipif(ops.extension() is None, reason=f"_kernels not built: {ops.extension_error()}")

# (N, K, G): N odd (and > the 64-row parallel grain), K = G x odd group counts: super-blocks of 256,
# remainders of 1..7 blocks of 32 (chunks and the 32-input tail), and no super-block at all.
SHAPES = [
    (1, 32, 32),
    (3, 96, 32),
    (5, 160, 32),
    (17, 352, 32),  # 11 groups: one super-block, a chunk and the tail
    (129, 224, 32),
    (3, 480, 32),  # 15 groups: remainder of 7 blocks
    (7, 64, 64),
    (33, 192, 64),
    (9, 576, 64),  # 9 groups: two super-blocks and one chunk
    (5, 320, 64),
    (3, 128, 128),
    (65, 384, 128),
    (5, 1152, 128),  # 9 groups
    (3, 896, 128),  # the model's K: three super-blocks and one group of 128
]
ROWS = [1, 2, 3, 4, 5, 7, 8, 11, 16]


def _case(n: int, k: int, g: int, m: int, mode: str, seed: int):
    w = randn(n, k, seed=seed)
    x = randn(m, k, seed=seed + 1, outliers=(0, k // 2), outlier_scale=8.0)
    bias = randn(n, seed=seed + 2)
    qw = R.quantize(w, mode, g)
    return x, qw, packing.pack_int4(qw), bias


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-30))


@needs_ext
@pytest.mark.parametrize(("n", "k", "g"), SHAPES)
@pytest.mark.parametrize("mode", ["sym", "asym"])
def test_gemm_ref_avx2_torch_fp64(n: int, k: int, g: int, mode: str) -> None:
    for i, m in enumerate(ROWS):
        x, qw, packed, bias = _case(n, k, g, m, mode, seed=1000 * i + n + k)
        y64 = R.linear_w4a8_ref(x, qw, bias)  # the kernel's math in fp64
        y_ref = torch.ops.codegeex_lsp.int4_gemm_impl(x, packed, k, g, bias, "ref")
        y_avx = torch.ops.codegeex_lsp.int4_gemm_impl(x, packed, k, g, bias, "avx2")
        assert _rel(y_ref, y64) <= KERNEL_VS_FP64_RTOL, (m, "ref")
        assert _rel(y_avx, y64) <= KERNEL_VS_FP64_RTOL, (m, "avx2")
        assert _rel(y_avx, y_ref) <= AVX2_VS_REF_RTOL, m
        y_torch = R.linear_ref(x, qw, bias)  # fp32 activations, the ground truth
        assert (y_avx - y_torch).abs().le(_act_rounding_bound(x, qw) + 1e-5 * y_torch.abs().max()).all(), m


def _act_rounding_bound(x: torch.Tensor, qw: R.Int4Weight) -> torch.Tensor:
    """[M, N] worst-case output change from rounding the activations to int8 per group."""
    _, da, _ = R.quantize_activations_int8(x)
    step = da.repeat_interleave(R.ACT_BLOCK, dim=1)  # [M, K]
    return ACT_ROUNDING_STEPS * (step.double() @ R.dequantize_groupwise(qw).abs().double().T).float()


@needs_ext
@pytest.mark.parametrize(("k", "g"), [(896, 32), (896, 128), (4864, 128)])
def test_activation_rounding_error_is_small_on_gaussian_rows(k: int, g: int) -> None:
    w = randn(67, k, seed=k)
    x = randn(4, k, seed=k + 1)
    qw = R.quantize(w, "sym", g)
    y = torch.ops.codegeex_lsp.int4_gemm(x, packing.pack_int4(qw), k, g, None)
    y_torch = R.linear_ref(x, qw)
    assert float((y - y_torch).norm() / y_torch.norm()) <= ACT_INT8_REL_TOL


@needs_ext
@pytest.mark.parametrize("k", [32, 96, 256, 352, 800, 1152])
def test_activation_quantization_bit_exact(k: int) -> None:
    x = randn(16, k, seed=k, outliers=(1,), outlier_scale=20.0)
    x[3, :32] = 0.0  # an all-zero block: scale 0, codes 0
    x[4, :3] = torch.tensor([127.0, 62.5, -3.5])  # da = 1 exactly: x / da are ties, half to even
    qa, da, asum = R.quantize_activations_int8(x)
    pos = packing.act_positions(k)
    for impl in ("ref", "avx2"):
        got_qa, got_da, got_asum = torch.ops.codegeex_lsp.int8_quantize_activations(x, impl)
        assert torch.equal(got_qa[:, pos], qa), impl  # kernel order, see cg_q4_act_pos
        assert torch.equal(got_da, da) and torch.equal(got_asum, asum), impl
        assert got_qa[4, pos[:3]].tolist() == [127, 62, -4]


@needs_ext
@pytest.mark.parametrize(("n", "k", "g"), [(5, 96, 32), (33, 192, 64), (65, 384, 128)])
def test_dequantize_exact(n: int, k: int, g: int) -> None:
    qw = R.quantize(randn(n, k, seed=n), "asym", g)
    packed = packing.pack_int4(qw)
    want = R.dequantize_groupwise(qw)
    for impl in ("ref", "avx2"):
        assert torch.equal(torch.ops.codegeex_lsp.int4_dequantize_impl(packed, k, g, impl), want)


@needs_ext
@pytest.mark.parametrize("m", [17, 37])
def test_prefill_sized_inputs_match_fp64(m: int) -> None:
    """Many rows: tiles of 4 activation rows over L1-sized blocks of output rows, same arithmetic."""
    x, qw, packed, bias = _case(131, 352, 32, m, "asym", seed=7)
    y64 = R.linear_w4a8_ref(x, qw, bias)
    for impl in ("ref", "avx2"):
        assert (
            _rel(torch.ops.codegeex_lsp.int4_gemm_impl(x, packed, 352, 32, bias, impl), y64)
            <= KERNEL_VS_FP64_RTOL
        )


@needs_ext
def test_shapes_dtypes_and_threads() -> None:
    x, qw, packed, bias = _case(129, 224, 32, 6, "sym", seed=11)
    y = torch.ops.codegeex_lsp.int4_gemm(x.reshape(2, 3, 224), packed, 224, 32, bias)
    assert y.shape == (2, 3, 129) and y.dtype == torch.float32
    yb = torch.ops.codegeex_lsp.int4_gemm(x.bfloat16(), packed, 224, 32, bias)
    assert yb.dtype == torch.bfloat16
    y_ref = R.linear_ref(x, qw, bias)
    assert float((yb.float() - y_ref).norm() / y_ref.norm()) <= 2 * ACT_INT8_REL_TOL
    torch.set_num_threads(1)
    y1 = torch.ops.codegeex_lsp.int4_gemm(x, packed, 224, 32, bias)
    assert torch.equal(y1, y.reshape(6, 129))  # rows are independent: threads change nothing
    assert torch.ops.codegeex_lsp.int4_gemm(x[:0], packed, 224, 32, None).shape == (0, 129)


@needs_ext
def test_bad_arguments_raise() -> None:
    _, _, packed, _ = _case(5, 96, 32, 1, "sym", seed=1)
    x = torch.zeros(1, 96)
    with pytest.raises(RuntimeError, match="multiple"):
        torch.ops.codegeex_lsp.int4_gemm(x, packed, 96, 64, None)
    with pytest.raises(RuntimeError, match="bytes"):
        torch.ops.codegeex_lsp.int4_gemm(torch.zeros(1, 128), packed, 128, 32, None)
    with pytest.raises(RuntimeError, match="group_size"):
        torch.ops.codegeex_lsp.int4_gemm(x, packed, 96, 48, None)
    with pytest.raises(RuntimeError, match="impl"):
        torch.ops.codegeex_lsp.int4_gemm_impl(x, packed, 96, 32, None, "sse9")


def test_fake_kernel_gives_shapes() -> None:
    packed = torch.empty(7, packing.row_bytes(96, 32), dtype=torch.uint8, device="meta")
    y = torch.ops.codegeex_lsp.int4_gemm(torch.empty(2, 5, 96, device="meta"), packed, 96, 32, None)
    assert y.shape == (2, 5, 7) and y.device.type == "meta"
    assert torch.ops.codegeex_lsp.int4_dequantize(packed, 96, 32).shape == (7, 96)


def test_fallback_warns_once_and_uses_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the extension the default kernel is the reference, announced by exactly one warning."""
    monkeypatch.setattr(ops, "_extension", None)
    monkeypatch.setattr(ops, "_extension_error", "ImportError: simulated missing compiler")
    monkeypatch.setattr(ops, "_warned_fallback", False)
    monkeypatch.delenv(ops.KERNEL_ENV, raising=False)
    x, qw, packed, bias = _case(5, 96, 32, 2, "asym", seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y1 = ops.int4_gemm(x, packed, 96, 32, bias)
        y2 = ops.int4_gemm(x, packed, 96, 32, bias)
        assert ops.resolve_kernel("cpp") == "ref"
    fallback = [w for w in caught if issubclass(w.category, ops.KernelFallbackWarning)]
    assert len(fallback) == 1
    assert "simulated missing compiler" in str(fallback[0].message) and "reference" in str(
        fallback[0].message
    )
    assert torch.equal(y1, y2)
    assert torch.allclose(y1, R.linear_ref(x, qw, bias), rtol=0, atol=1e-5)


def test_kernel_env_selects_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ops.KERNEL_ENV, "ref")
    assert ops.resolve_kernel() == "ref"
    assert ops.resolve_kernel("triton") == "triton"  # the argument wins
    monkeypatch.setenv(ops.KERNEL_ENV, "cuda-magic")
    with pytest.raises(ValueError, match="CODEGEEX_LSP_KERNEL"):
        ops.resolve_kernel()
