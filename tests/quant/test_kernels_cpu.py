"""C++ kernels: every CPU path (scalar ref, AVX2, AVX-512 VNNI) vs the scalar path, the torch reference
and an fp64 dot, on odd sizes.

The extension must be built: a missing one fails (`compiled_kernels`), it never skips, unless
CODEGEEX_LSP_NO_KERNELS=1 asked for that. Which paths must exist is read from /proc/cpuinfo, and
every path the host supports runs; a path it does not support must refuse with a clear error.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from codegeex_lsp.quant import ops, packing
from codegeex_lsp.quant import reference as R
from tests.quant.conftest import randn

# every path vs the kernel's own arithmetic in fp64 (int8 activations, exact integer sums): only
# fp32 rounding of ~K/32 block terms remains. Relative to max |y| of the case.
KERNEL_VS_FP64_RTOL = 2e-6
# a SIMD path vs the scalar ref path: same math, different fp32 summation order.
SIMD_VS_REF_RTOL = 2e-6
# kernel vs the fp32 dequantize-then-matmul reference: each activation moves by at most half an int8
# step (da / 2) of its group, so |dy| <= sum_k |w_k| * da_k * ACT_ROUNDING_STEPS (+ fp32 noise).
ACT_ROUNDING_STEPS = 0.5 + 1e-4
# the same on N(0, 1) activations without outliers, as a relative Frobenius error.
ACT_INT8_REL_TOL = 1.5e-2

# /proc/cpuinfo flags each path needs (the kernels' own check is __builtin_cpu_supports).
PATH_CPU_FLAGS = {
    "avx2": {"avx2", "fma", "f16c"},
    "avx512": {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"},
}

needs_ext = pytest.mark.usefixtures("compiled_kernels")


def _cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    match = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else None


def _host_paths() -> list[str]:
    """The paths this host must run: ref everywhere, the SIMD ones where x86 flags allow."""
    flags = _cpu_flags() or set()
    x86 = platform.machine().lower() in {"x86_64", "amd64", "i686", "i386"}
    out = ["ref"]
    if x86 and PATH_CPU_FLAGS["avx2"] <= flags:
        out.append("avx2")
        if PATH_CPU_FLAGS["avx512"] <= flags:
            out.append("avx512")
    return out


HOST_PATHS = _host_paths()
SIMD_PATHS = [p for p in HOST_PATHS if p != "ref"]
MISSING_PATHS = [p for p in ops.CPU_PATHS if p not in HOST_PATHS]

# (N, K, G): N odd (1 .. 1023, some above the 64-row parallel grain), K = G x odd group counts:
# super-blocks of 256, the 128-input half-block, remainders of 1..3 blocks of 32 (chunks and the
# 32-input tail), and no super-block at all. K % G != 0 is not a valid layout (see test_bad_arguments).
SHAPES = [
    (1, 32, 32),
    (3, 96, 32),
    (5, 160, 32),
    (17, 352, 32),  # 11 groups: one super-block, a chunk and the tail
    (129, 224, 32),
    (3, 480, 32),  # 15 groups: half-block, chunk, tail
    (33, 896, 32),  # the model's q/o/gate_up K: three super-blocks and a half-block
    (7, 64, 64),
    (33, 192, 64),
    (9, 576, 64),  # 9 groups: two super-blocks and one chunk
    (5, 320, 64),
    (3, 128, 128),
    (65, 384, 128),
    (5, 1152, 128),  # 9 groups
    (3, 896, 128),
    (1023, 160, 32),
    (5, 4864, 128),  # the model's down-projection K: 19 super-blocks
]
# activation rows: decode (1), the AVX2 tile (4) and the AVX-512 tile (8), and what is left over
ROWS = [1, 2, 3, 4, 5, 7, 8, 9, 11, 17]


def _case(n: int, k: int, g: int, m: int, mode: str, seed: int):
    w = randn(n, k, seed=seed)
    x = randn(m, k, seed=seed + 1, outliers=(0, k // 2), outlier_scale=8.0)
    bias = randn(n, seed=seed + 2)
    qw = R.quantize(w, mode, g)
    return x, qw, packing.pack_int4(qw), bias


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-30))


def _gemm(x, packed, k, g, bias, path):
    return torch.ops.codegeex_lsp.int4_gemm_impl(x, packed, k, g, bias, path)


@needs_ext
def test_paths_match_the_host_cpu() -> None:
    """The build holds every path, and the CPU check agrees with /proc/cpuinfo."""
    if _cpu_flags() is None:
        assert "ref" in ops.supported_cpu_paths()
        return
    if platform.machine().lower() in {"x86_64", "amd64"}:
        assert list(ops.extension().compiled_paths()) == list(ops.CPU_PATHS)
    assert ops.supported_cpu_paths() == HOST_PATHS
    assert ops.cpu_path() == (os.environ.get(ops.CPU_KERNEL_ENV) or HOST_PATHS[-1])
    assert ops.kernel_label() == f"cpp/{ops.cpu_path()}"


@needs_ext
@pytest.mark.parametrize("path", MISSING_PATHS or ["none"])
def test_unsupported_path_refuses(path: str) -> None:
    """A path this CPU cannot run raises instead of faulting (on an AVX-512 host: nothing to refuse)."""
    if path == "none":
        assert list(ops.CPU_PATHS) == HOST_PATHS
        return
    x, _, packed, _ = _case(5, 96, 32, 1, "sym", seed=1)
    with pytest.raises(RuntimeError, match="this CPU lacks"):
        _gemm(x, packed, 96, 32, None, path)
    with pytest.raises(ValueError, match="this CPU lacks"):
        ops.set_cpu_path(path)


@needs_ext
@pytest.mark.parametrize(("n", "k", "g"), SHAPES)
@pytest.mark.parametrize("mode", ["sym", "asym"])
def test_gemm_every_path_vs_ref_torch_fp64(n: int, k: int, g: int, mode: str) -> None:
    for i, m in enumerate(ROWS):
        x, qw, packed, bias = _case(n, k, g, m, mode, seed=1000 * i + n + k)
        y64 = R.linear_w4a8_ref(x, qw, bias)  # the kernel's math in fp64
        y_ref = _gemm(x, packed, k, g, bias, "ref")
        assert _rel(y_ref, y64) <= KERNEL_VS_FP64_RTOL, (m, "ref")
        bound = _act_rounding_bound(x, qw)
        y_torch = R.linear_ref(x, qw, bias)  # fp32 activations, the ground truth
        for path in SIMD_PATHS:
            y = _gemm(x, packed, k, g, bias, path)
            assert _rel(y, y64) <= KERNEL_VS_FP64_RTOL, (m, path)
            assert _rel(y, y_ref) <= SIMD_VS_REF_RTOL, (m, path)
            assert (y - y_torch).abs().le(bound + 1e-5 * y_torch.abs().max()).all(), (m, path)


def _act_rounding_bound(x: torch.Tensor, qw: R.Int4Weight) -> torch.Tensor:
    """[M, N] worst-case output change from rounding the activations to int8 per group."""
    _, da, _ = R.quantize_activations_int8(x)
    step = da.repeat_interleave(R.ACT_BLOCK, dim=1)  # [M, K]
    return ACT_ROUNDING_STEPS * (step.double() @ R.dequantize_groupwise(qw).abs().double().T).float()


@needs_ext
@pytest.mark.parametrize("path", HOST_PATHS)
@pytest.mark.parametrize(("k", "g"), [(896, 32), (896, 128), (4864, 128)])
def test_activation_rounding_error_is_small_on_gaussian_rows(path: str, k: int, g: int) -> None:
    w = randn(67, k, seed=k)
    x = randn(4, k, seed=k + 1)
    qw = R.quantize(w, "sym", g)
    y = _gemm(x, packing.pack_int4(qw), k, g, None, path)
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
    for path in HOST_PATHS:
        got_qa, got_da, got_asum = torch.ops.codegeex_lsp.int8_quantize_activations(x, path)
        assert torch.equal(got_qa[:, pos], qa), path  # kernel order, see cg_q4_act_pos
        assert torch.equal(got_da, da) and torch.equal(got_asum, asum), path
        assert got_qa[4, pos[:3]].tolist() == [127, 62, -4]


@needs_ext
@pytest.mark.parametrize(("n", "k", "g"), [(5, 96, 32), (33, 192, 64), (65, 384, 128), (3, 480, 32)])
def test_dequantize_exact(n: int, k: int, g: int) -> None:
    qw = R.quantize(randn(n, k, seed=n), "asym", g)
    packed = packing.pack_int4(qw)
    want = R.dequantize_groupwise(qw)
    for path in HOST_PATHS:
        assert torch.equal(torch.ops.codegeex_lsp.int4_dequantize_impl(packed, k, g, path), want), path


@needs_ext
@pytest.mark.parametrize("m", [17, 37, 130])
@pytest.mark.parametrize(("n", "k", "g"), [(131, 352, 32), (97, 896, 32), (41, 4864, 128)])
def test_prefill_sized_inputs_match_fp64(m: int, n: int, k: int, g: int) -> None:
    """Many rows: tiles of 4 (AVX2) or 8 (AVX-512; 4 for long rows) activation rows over L1-sized
    blocks of output rows, on the model's own K as well."""
    x, qw, packed, bias = _case(n, k, g, m, "asym", seed=7)
    y64 = R.linear_w4a8_ref(x, qw, bias)
    y_ref = _gemm(x, packed, k, g, bias, "ref")
    for path in HOST_PATHS:
        y = _gemm(x, packed, k, g, bias, path)
        assert _rel(y, y64) <= KERNEL_VS_FP64_RTOL, path
        assert _rel(y, y_ref) <= SIMD_VS_REF_RTOL, path


@needs_ext
@pytest.mark.parametrize("m", [1, 3, 8, 37])
@pytest.mark.parametrize(("n", "k", "g"), [(97, 896, 32), (41, 4864, 128), (19, 352, 32), (9, 480, 32)])
def test_residual_plane_in_one_pass(m: int, n: int, k: int, g: int) -> None:
    """W = W1 + W2 (a second plane quantizing the first one's error): both planes' terms in one
    accumulator per output, on every path, against the fp64 sum of the two planes' kernel math."""
    x, q1, p1, bias = _case(n, k, g, m, "asym", seed=11 + m)
    w = randn(n, k, seed=11 + m)
    q2 = R.quantize(w - R.dequantize_groupwise(q1), "asym", g)
    p2 = packing.pack_int4(q2)
    y64 = R.linear_w4a8_ref(x, q1, bias).double() + R.linear_w4a8_ref(x, q2).double()
    y_ref = torch.ops.codegeex_lsp.int4_gemm_impl(x, p1, k, g, bias, "ref", p2)
    assert _rel(y_ref, y64) <= KERNEL_VS_FP64_RTOL
    for path in HOST_PATHS:
        y = torch.ops.codegeex_lsp.int4_gemm_impl(x, p1, k, g, bias, path, p2)
        assert _rel(y, y64) <= KERNEL_VS_FP64_RTOL, path
        assert _rel(y, y_ref) <= SIMD_VS_REF_RTOL, path
        y_sum = _gemm(x, p1, k, g, bias, path) + _gemm(x, p2, k, g, None, path)
        assert _rel(y, y_sum) <= SIMD_VS_REF_RTOL, path
    # the op the engine calls, and the PyTorch reference with fp32 activations
    y_op = ops.int4_gemm(x, p1, k, g, bias, p2)
    y_torch = ops.int4_gemm(x, p1, k, g, bias, p2, kernel="ref")
    want = R.linear_ref(x, q1, bias) + R.linear_ref(x, q2)
    assert _rel(y_torch, want) <= 1e-5
    assert float((y_op - want).norm() / want.norm()) <= ACT_INT8_REL_TOL


@needs_ext
@pytest.mark.parametrize("m", [1, 3, 8, 37])
@pytest.mark.parametrize(("n", "k", "g"), [(97, 896, 32), (41, 4864, 128), (23, 768, 64), (9, 480, 32)])
def test_8bit_codes_as_two_planes(m: int, n: int, k: int, g: int) -> None:
    """8-bit codes split into high and low nibble planes (scales exactly 16:1), which the AVX-512 path
    rejoins into one dot product per 32 inputs, and rows where some groups are not a 16:1 pair (the
    plane-by-plane fallback, within the same call): every path against the fp64 sum of both planes."""
    x, _, _, bias = _case(n, k, g, m, "asym", seed=21 + m)
    w = randn(n, k, seed=21 + m) * 0.05
    q1, q2 = R.quantize_8bit_split(w, g)
    assert torch.equal(q1.scale, q2.scale * 16)
    # every other row: plane 1 replaced by a plain asym int4 plane in half of its groups
    other = R.quantize(w, "asym", g)
    mixed = torch.zeros_like(q1.scale, dtype=torch.bool)
    mixed[::2, ::2] = True
    rows_mask = mixed.repeat_interleave(g, dim=1)
    q1m = R.Int4Weight(
        q=torch.where(rows_mask, other.q, q1.q),
        scale=torch.where(mixed, other.scale, q1.scale),
        zero=torch.where(mixed, other.zero, q1.zero),
        group_size=g,
    )
    p2 = packing.pack_int4(q2)
    for first in (q1, q1m):
        p1 = packing.pack_int4(first)
        y64 = R.linear_w4a8_ref(x, first, bias).double() + R.linear_w4a8_ref(x, q2).double()
        y_ref = torch.ops.codegeex_lsp.int4_gemm_impl(x, p1, k, g, bias, "ref", p2)
        for path in HOST_PATHS:
            y = torch.ops.codegeex_lsp.int4_gemm_impl(x, p1, k, g, bias, path, p2)
            assert _rel(y, y64) <= KERNEL_VS_FP64_RTOL, path
            assert _rel(y, y_ref) <= SIMD_VS_REF_RTOL, path
    # the pair is the 8-bit weight: within half an 8-bit step of w, one step where the rounded zero
    # point clips a group's extreme
    w8 = R.dequantize_groupwise(q1) + R.dequantize_groupwise(q2)
    step = q2.scale.repeat_interleave(g, dim=1)
    err = (w8 - w).abs()
    assert bool((err <= step * (1 + 1e-3)).all())
    assert float((err <= step * (0.5 + 1e-3)).float().mean()) > 0.99


def test_8bit_split_codes_and_zeros() -> None:
    """W1 + W2 = d8 * (q8 - z8) exactly: codes, zeros and scales of the two planes."""
    w = randn(7, 64, seed=5)
    w[0] = 0.0  # an all-zero row: scale 0, nothing divides by it
    w[1, :32] = torch.linspace(0.1, 2.0, 32)  # all positive: zero point 0
    q1, q2 = R.quantize_8bit_split(w, 32)
    q8 = q1.q.to(torch.int32) * 16 + q2.q.to(torch.int32)
    z8 = q1.zero.to(torch.int32) * 16 + q2.zero.to(torch.int32)
    d8 = q2.scale
    want = (d8[..., None] * (q8.reshape(7, 2, 32) - z8[..., None]).float()).reshape(7, 64)
    got = R.dequantize_groupwise(q1) + R.dequantize_groupwise(q2)
    assert torch.equal(got, want)
    assert bool((q8 <= 255).all()) and int(z8[1, 0]) == 0 and float(d8[0].abs().sum()) == 0.0
    assert torch.equal(got[0], torch.zeros(64))
    assert float((got - w).abs().max()) <= float(d8.max()) * (1 + 1e-3)


@needs_ext
def test_residual_plane_of_another_shape_is_refused() -> None:
    x, _, packed, _ = _case(5, 96, 32, 2, "sym", seed=3)
    _, _, other, _ = _case(6, 96, 32, 2, "sym", seed=4)
    with pytest.raises(RuntimeError, match="residual plane has 6 rows"):
        ops.int4_gemm(x, packed, 96, 32, None, other)
    with pytest.raises(RuntimeError, match="packed row is"):
        ops.int4_gemm(x, packed, 96, 32, None, packed[:, :32].contiguous())


@needs_ext
def test_default_op_runs_the_active_path() -> None:
    """set_cpu_path switches what the default op (the engine's) runs; auto is the best path."""
    x, _, packed, bias = _case(129, 896, 32, 3, "asym", seed=5)
    before = ops.cpu_path()
    try:
        for path in HOST_PATHS:
            assert ops.set_cpu_path(path) == path and ops.cpu_path() == path
            assert torch.equal(
                torch.ops.codegeex_lsp.int4_gemm(x, packed, 896, 32, bias),
                _gemm(x, packed, 896, 32, bias, path),
            )
        assert ops.set_cpu_path("auto") == HOST_PATHS[-1]
        with pytest.raises(ValueError, match="unknown CPU kernel path"):
            ops.set_cpu_path("sse9")
    finally:
        ops.set_cpu_path(before)


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in {ops.CPU_KERNEL_ENV, ops.NO_KERNELS_ENV}}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


_REPORT = (
    "import json\nfrom codegeex_lsp.quant import ops\n"
    "print(json.dumps({'path': ops.cpu_path(), 'label': ops.kernel_label()}))"
)


@needs_ext
def test_cpu_kernel_env_forces_a_path_and_rejects_bad_values() -> None:
    forced = SIMD_PATHS[0] if SIMD_PATHS else "ref"
    done = _run_python(_REPORT, **{ops.CPU_KERNEL_ENV: forced})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"path": forced, "label": f"cpp/{forced}"}
    done = _run_python(_REPORT, **{ops.CPU_KERNEL_ENV: "sse9"})
    assert done.returncode == 0, done.stderr
    assert "unknown CPU kernel path 'sse9'" in json.loads(done.stdout)["label"]
    for missing in MISSING_PATHS:
        done = _run_python(_REPORT, **{ops.CPU_KERNEL_ENV: missing})
        assert "this CPU lacks" in json.loads(done.stdout)["label"], missing


@needs_ext
def test_simd_code_stays_in_the_simd_functions() -> None:
    """The build has no global -m flag: only the SIMD paths' functions contain VEX/EVEX code, so the
    extension loads, and the ref path runs, on any x86-64 CPU."""
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        pytest.skip("x86-64 only: elsewhere the build holds the ref path alone")
    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils, installed with gcc) is needed to inspect the build"
    lib = ops.extension().__file__
    text = subprocess.run(
        [objdump, "-d", "-C", "--no-show-raw-insn", lib], capture_output=True, text=True, check=True
    ).stdout
    offenders, function, simd_functions, mnemonics = set(), "", set(), set()
    for line in text.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if head:
            function = head.group(1)
            continue
        insn = re.match(r"^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$", line)
        if insn and (insn.group(1).startswith("v") or re.search(r"%[yz]mm|%k[0-7]", insn.group(2))):
            if "_avx2" in function or "_avx512" in function or "(anonymous namespace)" in function:
                simd_functions.add(function)
                mnemonics.add(insn.group(1))
            else:
                offenders.add(function)
    assert not offenders, sorted(offenders)[:10]
    assert any("cg_q8_quantize_rows_avx512" in f for f in simd_functions)
    assert any("cg_q8_quantize_rows_avx2" in f for f in simd_functions)
    # both dot products are built: VNNI's (AVX-512 path) and maddubs (AVX2 path)
    assert "vpdpbusd" in mnemonics and "vpmaddubsw" in mnemonics, sorted(m for m in mnemonics if "pd" in m)


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


def test_missing_extension_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken build must not quietly run the reference: the default kernel raises, saying how to fix it."""
    monkeypatch.setattr(ops, "_extension", None)
    monkeypatch.setattr(ops, "_extension_error", "ImportError: simulated failed build")
    monkeypatch.delenv(ops.KERNEL_ENV, raising=False)
    monkeypatch.delenv(ops.NO_KERNELS_ENV, raising=False)
    x, _, packed, bias = _case(5, 96, 32, 2, "asym", seed=3)
    with pytest.raises(ops.KernelsMissingError, match=r"simulated failed build.*CODEGEEX_LSP_NO_KERNELS=1"):
        ops.int4_gemm(x, packed, 96, 32, bias)
    assert "simulated failed build" in ops.kernel_label()
    assert ops.resolve_kernel("ref") == "ref"  # asking for the reference by name still works


def test_skipped_kernels_warn_once_and_use_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """CODEGEEX_LSP_NO_KERNELS=1: the reference runs, announced by exactly one warning."""
    monkeypatch.setattr(ops, "_extension", None)
    monkeypatch.setattr(ops, "_extension_error", "disabled by CODEGEEX_LSP_NO_KERNELS=1")
    monkeypatch.setattr(ops, "_warned_fallback", False)
    monkeypatch.delenv(ops.KERNEL_ENV, raising=False)
    monkeypatch.setenv(ops.NO_KERNELS_ENV, "1")
    x, qw, packed, bias = _case(5, 96, 32, 2, "asym", seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y1 = ops.int4_gemm(x, packed, 96, 32, bias)
        y2 = ops.int4_gemm(x, packed, 96, 32, bias)
        assert ops.resolve_kernel("cpp") == "ref"
    fallback = [w for w in caught if issubclass(w.category, ops.KernelFallbackWarning)]
    assert len(fallback) == 1
    assert "CODEGEEX_LSP_NO_KERNELS" in str(fallback[0].message) and "reference" in str(fallback[0].message)
    assert torch.equal(y1, y2)
    assert torch.allclose(y1, R.linear_ref(x, qw, bias), rtol=0, atol=1e-5)
    assert ops.kernel_label() == "ref (PyTorch)"


def test_kernel_env_selects_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ops.KERNEL_ENV, "ref")
    assert ops.resolve_kernel() == "ref"
    assert ops.resolve_kernel("triton") == "triton"  # the argument wins
    monkeypatch.setenv(ops.KERNEL_ENV, "cuda-magic")
    with pytest.raises(ValueError, match="CODEGEEX_LSP_KERNEL"):
        ops.resolve_kernel()
