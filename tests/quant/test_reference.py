"""The torch reference: quantize/dequantize error bounds, zero points, the packed layout round trip."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from codegeex_lsp.quant import packing
from codegeex_lsp.quant import reference as R
from tests.quant.conftest import randn

# Worst element error, in units of its group's scale: rounding (1/2) plus the fp16 rounding of the
# scale (at most 2^-11 relative, times up to 15 steps).
ROUNDTRIP_MAX_STEPS = 0.5 + 16 * 2.0**-11
# Relative Frobenius error on N(0, 1) weights [67, 384], seed 0: measured value + 10 % margin.
REL_ERROR_BOUND = {
    ("sym", 32): 0.107,
    ("sym", 64): 0.119,
    ("sym", 128): 0.131,
    ("asym", 32): 0.090,
    ("asym", 64): 0.101,
    ("asym", 128): 0.112,
    ("rowwise", 32): 0.147,
    ("rowwise", 64): 0.147,
    ("rowwise", 128): 0.147,
}
HEADER = Path(__file__).resolve().parents[2] / "kernels" / "int4_layout.h"


@pytest.mark.parametrize(("mode", "group_size"), sorted(REL_ERROR_BOUND))
def test_roundtrip_error_bounds(mode: str, group_size: int) -> None:
    w = randn(67, 384, seed=0)
    qw = R.quantize(w, mode, group_size)
    deq = R.dequantize_groupwise(qw)
    assert qw.q.dtype == torch.uint8 and int(qw.q.max()) <= 15
    assert torch.equal(qw.scale, qw.scale.half().float()), "scales must be fp16-exact"
    step = qw.scale.repeat_interleave(group_size, dim=1)  # [N, K]
    assert ((deq - w).abs() <= ROUNDTRIP_MAX_STEPS * step + 1e-7).all()
    assert ((deq - w).norm() / w.norm()).item() <= REL_ERROR_BOUND[(mode, group_size)]


def test_symmetric_zero_is_eight_and_codes_centred() -> None:
    qw = R.quantize(randn(5, 96, seed=1), "sym", 32)
    assert (qw.zero == R.SYM_ZERO).all()
    assert int(qw.q.min()) >= 1 and int(qw.q.max()) <= 15  # q - 8 in -7..7


def test_asymmetric_zero_point_tracks_the_range() -> None:
    """A group that is all positive gets zero point 0 and uses all 16 codes; an all-negative one 15."""
    w = torch.cat(
        [torch.linspace(0.0, 3.0, 32), torch.linspace(-3.0, 0.0, 32), torch.linspace(-1.0, 2.0, 32)]
    )[None]
    qw = R.quantize(w, "asym", 32)
    assert qw.zero.tolist() == [[0, 15, 5]]
    assert qw.q[0, :32].min() == 0 and qw.q[0, :32].max() == 15
    deq = R.dequantize_groupwise(qw)
    assert deq[0, 0] == 0.0 and deq[0, 63] == 0.0  # zero stays exactly zero
    assert torch.allclose(deq, w, atol=ROUNDTRIP_MAX_STEPS * float(qw.scale.max()))


def test_asym_beats_sym_on_shifted_weights() -> None:
    w = randn(16, 256, seed=2) + 1.5
    err = {m: (R.fake_quantize(w, m, 64) - w).norm().item() for m in ("sym", "asym")}
    assert err["asym"] < 0.7 * err["sym"]


def test_zero_group_and_bad_group_sizes() -> None:
    w = torch.zeros(3, 64)
    for mode in ("sym", "asym", "rowwise"):
        assert torch.equal(R.fake_quantize(w, mode, 32), w)
    with pytest.raises(ValueError, match="group_size"):
        R.quantize(randn(2, 64, seed=3), "sym", 16)
    with pytest.raises(ValueError, match="multiple"):
        R.quantize(randn(2, 96, seed=3), "sym", 64)
    with pytest.raises(ValueError, match="mode"):
        R.quantize(randn(2, 64, seed=3), "int3", 32)


def test_rowwise_has_one_scale_per_row() -> None:
    qw = R.quantize(randn(7, 256, seed=4), "rowwise", 64)
    assert (qw.scale == qw.scale[:, :1]).all()


@pytest.mark.parametrize(
    ("n_out", "n_in", "group_size"),
    [(1, 32, 32), (3, 96, 32), (5, 352, 32), (2, 512, 32), (4, 192, 64), (7, 384, 128), (3, 896, 128)],
)
@pytest.mark.parametrize("mode", ["sym", "asym"])
def test_pack_unpack_roundtrip(n_out: int, n_in: int, group_size: int, mode: str) -> None:
    qw = R.quantize(randn(n_out, n_in, seed=n_in + n_out), mode, group_size)
    packed = packing.pack_int4(qw)
    assert packed.shape == (n_out, packing.row_bytes(n_in, group_size)) and packed.dtype == torch.uint8
    back = packing.unpack_int4(packed, n_in, group_size)
    assert torch.equal(back.q, qw.q) and torch.equal(back.scale, qw.scale) and torch.equal(back.zero, qw.zero)
    assert torch.equal(packing.dequantize_packed(packed, n_in, group_size), R.dequantize_groupwise(qw))


def test_nibble_order() -> None:
    """Super-block: byte 32i + 4j + t = inputs 32j + 8i + t (low) | + 4 (high); half-block: byte
    32i + 4j + t = input 32(j % 4) + 16i + 8(j // 4) + t | + 4; then 64-input chunks (byte j = j | 32 + j)
    and a 32-input tail (byte j = j | 16 + j)."""
    n_in = 480  # one super-block, the half-block, one chunk, the tail
    q = (torch.arange(n_in) * 7 % 16).to(torch.uint8)[None]
    ng = n_in // 32
    qw = R.Int4Weight(
        q=q, scale=torch.ones(1, ng), zero=torch.full((1, ng), 8, dtype=torch.uint8), group_size=32
    )
    packed = packing.pack_int4(qw)[0]

    def byte(lo: int, hi: int) -> int:
        return int(q[0, lo]) | (int(q[0, hi]) << 4)

    for i, j, t in [(0, 0, 0), (1, 2, 3), (3, 7, 1), (2, 5, 2)]:
        assert int(packed[32 * i + 4 * j + t]) == byte(32 * j + 8 * i + t, 32 * j + 8 * i + 4 + t)
    for i, j, t in [(0, 0, 0), (1, 6, 3), (0, 5, 1)]:
        k = 256 + 32 * (j % 4) + 16 * i + 8 * (j // 4) + t
        assert int(packed[128 + 32 * i + 4 * j + t]) == byte(k, k + 4)
    assert int(packed[192 + 5]) == byte(384 + 5, 384 + 37)
    assert int(packed[224 + 3]) == byte(448 + 3, 448 + 19)
    assert packed[240:246].tolist() == [0, 60, 0, 60, 0, 60]  # fp16 1.0 = 0x3c00, little endian
    assert packing.act_positions(n_in)[[4, 8, 33, 256 + 24, 400]].tolist() == [32, 64, 5, 256 + 64 + 16, 400]


def _c_int(expr: str) -> int:
    """Value of a C constant expression made of integers, + and * (the header's static_asserts)."""
    return sum(math.prod(int(f) for f in term.split("*")) for term in expr.split("+"))


def test_python_layout_mirrors_the_header() -> None:
    text = HEADER.read_text()
    defines = dict(re.findall(r"#define (CG_Q4_\w+) (\d+)", text))
    assert int(defines["CG_Q4_LAYOUT_VERSION"]) == packing.LAYOUT_VERSION
    assert int(defines["CG_Q4_CHUNK_ELEMS"]) == packing.CHUNK_ELEMS
    assert int(defines["CG_Q4_TAIL_ELEMS"]) == packing.TAIL_ELEMS
    assert int(defines["CG_Q4_ROW_ALIGN"]) == packing.ROW_ALIGN
    assert int(defines["CG_Q4_SYM_ZERO"]) == R.SYM_ZERO
    assert int(defines["CG_Q4_SUPERBLOCK_ELEMS"]) == packing.SUPERBLOCK_ELEMS
    assert int(defines["CG_Q4_ACT_BLOCK"]) == packing.ACT_BLOCK == R.ACT_BLOCK
    for k, g, n in re.findall(r"cg_q4_row_bytes\((\d+), (\d+)\) == (\d+)", text):
        assert packing.row_bytes(int(k), int(g)) == int(n)
    for n_in, expr, pos in re.findall(r"cg_q4_act_pos\((\d+), ([\d +*]+)\) == ([\d +*]+)", text):
        assert int(packing.act_positions(int(n_in))[_c_int(expr)]) == _c_int(pos)  # the header's examples


def test_activation_quantization_reference() -> None:
    x = randn(3, 128, seed=5)
    qa, da, asum = R.quantize_activations_int8(x)
    assert qa.dtype == torch.int8 and int(qa.abs().max()) == 127 and da.shape == (3, 4)
    assert torch.equal(asum, qa.float().reshape(3, 4, 32).sum(-1))
    assert (
        (qa.float().reshape(3, 4, 32) * da[..., None]).reshape(3, 128) - x
    ).abs().max() <= da.max() / 2 + 1e-7
