"""The PyTorch reference for int4 weight quantization: the oracle every fast path is tested against.

Owns the math, not the byte layout (that is `packing.py`):

- group-wise int4, symmetric (`sym`: zero point fixed at 8, scale = absmax / 7) and asymmetric
  (`asym`: per-group integer zero point 0..15, scale = (max - min) / 15), group sizes 32/64/128;
- GLM-130B style per-row absmax int4 (`rowwise`): one symmetric scale per output row;
- AWQ-style activation-aware scaling (`awq`): per-input-channel scales `s` found by grid search on
  calibration activations; the weight is quantized as `W * s` and the runtime multiplies its input
  by `1 / s` (or folds `1 / s` into the preceding norm), so the int4 kernel itself is unchanged;
- GPTQ (`gptq`, in `gptq.py`): asymmetric codes chosen with error feedback through the calibration
  Hessian; stored and run exactly like `asym`.

Scales are rounded to fp16 here, as stored, so `dequantize_groupwise` equals what every kernel
reconstructs: `w = d * (q - z)` with `d` fp16-exact and `q`, `z` in 0..15.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Mode = Literal["sym", "asym", "rowwise", "awq", "gptq"]
MODES: tuple[str, ...] = ("sym", "asym", "rowwise", "awq", "gptq")
GROUP_SIZES: tuple[int, ...] = (32, 64, 128)
SYM_ZERO = 8  # symmetric codes are q = round(w / d) + 8, q - 8 in -7..7
QMAX = 15
QMAX8 = 255  # the 8-bit codes of quantize_8bit_split

AWQ_GRID = 20  # alpha in {0, 1/20, ..., 19/20}, as in AWQ's search


@dataclass(frozen=True)
class Int4Weight:
    """A quantized weight [N, K] in reference form (unpacked)."""

    q: torch.Tensor  # [N, K] uint8, 0..15
    scale: torch.Tensor  # [N, K // group_size] float32, fp16-exact
    zero: torch.Tensor  # [N, K // group_size] uint8, 0..15
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.q.shape[0], self.q.shape[1])


def check_group_size(in_features: int, group_size: int) -> None:
    if group_size not in GROUP_SIZES:
        raise ValueError(f"group_size must be one of {GROUP_SIZES}, got {group_size}")
    if in_features % group_size:
        raise ValueError(f"in_features {in_features} is not a multiple of group_size {group_size}")


def _to_fp16_exact(scale: torch.Tensor) -> torch.Tensor:
    """Round scales to the stored fp16; refuse ones fp16 cannot hold (inf) instead of corrupting them."""
    half = scale.to(torch.float16)
    if not torch.isfinite(half).all():
        raise ValueError("a quantization scale overflows fp16 (|w| too large); rescale the weight first")
    return half.to(torch.float32)


def quantize_groupwise(weight: torch.Tensor, group_size: int, *, symmetric: bool) -> Int4Weight:
    """Round-to-nearest int4 per group of `group_size` consecutive inputs. weight: [N, K]."""
    n_out, n_in = weight.shape
    check_group_size(n_in, group_size)
    w = weight.detach().to(torch.float32).reshape(n_out, n_in // group_size, group_size)  # [N, ng, G]
    if symmetric:
        scale = _to_fp16_exact(w.abs().amax(dim=-1) / 7.0)  # [N, ng]
        zero = torch.full_like(scale, SYM_ZERO)
    else:
        w_min = w.amin(dim=-1).clamp(max=0.0)  # the range always contains 0, so 0 is exact
        w_max = w.amax(dim=-1).clamp(min=0.0)
        scale = _to_fp16_exact((w_max - w_min) / QMAX)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.round(-w_min / safe).clamp(0, QMAX)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(w / safe[..., None]) + zero[..., None]
    q = torch.where(scale[..., None] > 0, q, zero[..., None].expand_as(q)).clamp(0, QMAX)
    return Int4Weight(
        q=q.reshape(n_out, n_in).to(torch.uint8),
        scale=scale,
        zero=zero.to(torch.uint8),
        group_size=group_size,
    )


def quantize_rowwise_absmax(weight: torch.Tensor, group_size: int) -> Int4Weight:
    """GLM-130B style: one symmetric absmax scale per output row, stored once per group so the
    grouped kernels run it unchanged."""
    n_out, n_in = weight.shape
    check_group_size(n_in, group_size)
    w = weight.detach().to(torch.float32)
    scale = _to_fp16_exact(w.abs().amax(dim=-1, keepdim=True) / 7.0)  # [N, 1]
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = (torch.round(w / safe) + SYM_ZERO).clamp(0, QMAX)
    n_groups = n_in // group_size
    return Int4Weight(
        q=q.to(torch.uint8),
        scale=scale.expand(n_out, n_groups).contiguous(),
        zero=torch.full((n_out, n_groups), SYM_ZERO, dtype=torch.uint8),
        group_size=group_size,
    )


def dequantize_groupwise(qw: Int4Weight) -> torch.Tensor:
    """[N, K] float32: w = d * (q - z), exactly what the kernels reconstruct."""
    n_out, n_in = qw.shape
    g = qw.group_size
    q = qw.q.reshape(n_out, n_in // g, g).to(torch.float32)
    w = qw.scale[..., None] * (q - qw.zero[..., None].to(torch.float32))
    return w.reshape(n_out, n_in)


def quantize(weight: torch.Tensor, mode: str, group_size: int) -> Int4Weight:
    """Dispatch on a mode name. `awq` expects an already scaled weight (see `awq_search_scales`)."""
    if mode == "sym":
        return quantize_groupwise(weight, group_size, symmetric=True)
    if mode in ("asym", "awq", "gptq"):  # awq/gptq without calibration: plain asymmetric rounding
        return quantize_groupwise(weight, group_size, symmetric=False)
    if mode == "rowwise":
        return quantize_rowwise_absmax(weight, group_size)
    raise ValueError(f"unknown quantization mode {mode!r}; expected one of {MODES}")


def quantize_8bit_split(weight: torch.Tensor, group_size: int) -> tuple[Int4Weight, Int4Weight]:
    """Round-to-nearest 8-bit asymmetric codes per group, held as two int4 planes W = W1 + W2.

    With d8 = (max - min) / 255 (fp16), z8 and q8 in 0..255: W1 has the high nibbles (scale 16 * d8,
    zero z8 >> 4) and W2 the low ones (scale d8, zero z8 & 15), so W1 + W2 = d8 * (q8 - z8) exactly.
    Every kernel runs the pair as any residual pair; because W1's scale is exactly 16 times W2's,
    a VNNI kernel can also rejoin the nibbles into one u8 code and do one dot product, not two.
    """
    n_out, n_in = weight.shape
    check_group_size(n_in, group_size)
    w = weight.detach().to(torch.float32).reshape(n_out, n_in // group_size, group_size)
    w_min = w.amin(dim=-1).clamp(max=0.0)
    w_max = w.amax(dim=-1).clamp(min=0.0)
    scale = _to_fp16_exact((w_max - w_min) / QMAX8)
    high_scale = _to_fp16_exact(scale * 16)  # x16 is exact in fp16 unless it overflows (refused)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-w_min / safe).clamp(0, QMAX8)
    q = torch.round(w / safe[..., None]) + zero[..., None]
    q = torch.where(scale[..., None] > 0, q, zero[..., None].expand_as(q)).clamp(0, QMAX8)
    q = q.reshape(n_out, n_in).to(torch.uint8)
    zero = zero.to(torch.uint8)
    high = Int4Weight(q=q >> 4, scale=high_scale, zero=zero >> 4, group_size=group_size)
    low = Int4Weight(q=q & 15, scale=scale, zero=zero & 15, group_size=group_size)
    return high, low


def fake_quantize(weight: torch.Tensor, mode: str, group_size: int) -> torch.Tensor:
    """quantize then dequantize, float32 [N, K]."""
    return dequantize_groupwise(quantize(weight, mode, group_size))


def linear_ref(x: torch.Tensor, qw: Int4Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The ground truth of the int4 linear: fp32 x @ dequantize(W).T + bias."""
    w = dequantize_groupwise(qw)
    b = None if bias is None else bias.to(torch.float32)
    return torch.nn.functional.linear(x.to(torch.float32), w, b)


ACT_BLOCK = 32  # inputs per int8 activation scale in the CPU kernels


def quantize_activations_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The CPU kernel's activation step: per row and block of 32, qa = round_half_even(x / da), da = absmax / 127.

    x: [M, K] -> qa [M, K] int8 (input order), da [M, K / 32] float32, asum [M, K / 32] float32 (sum of
    qa per block). Bit-identical to `cg_q8_quantize_rows_ref` (same fp32 operations, same order).
    """
    m_rows, n_in = x.shape
    xg = x.to(torch.float32).reshape(m_rows, n_in // ACT_BLOCK, ACT_BLOCK)
    amax = xg.abs().amax(dim=-1)  # [M, nb]
    # tensor / tensor: torch turns `t / python_scalar` into a multiply by the reciprocal, which
    # rounds differently from the C `amax / 127.0f`
    da = amax / torch.full_like(amax, 127.0)
    safe = torch.where(da != 0, da, torch.ones_like(da))
    inv = torch.where(da != 0, torch.ones_like(da) / safe, torch.zeros_like(da))
    qa = torch.round(xg * inv[..., None])  # torch.round is half to even
    return qa.reshape(m_rows, n_in).to(torch.int8), da, qa.sum(dim=-1)


def linear_w4a8_ref(x: torch.Tensor, qw: Int4Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """What the CPU kernel computes (int8 activations), evaluated in float64: the tight parity oracle."""
    qa, da, _ = quantize_activations_int8(x)
    xq = (qa.to(torch.float64).reshape(*da.shape, ACT_BLOCK) * da[..., None].to(torch.float64)).reshape(
        x.shape
    )
    y = xq @ dequantize_groupwise(qw).to(torch.float64).T
    if bias is not None:
        y = y + bias.to(torch.float64)
    return y


# --- AWQ -------------------------------------------------------------------------------------------


def awq_search_scales(
    weight: torch.Tensor,
    activations: torch.Tensor,
    group_size: int,
    *,
    grid: int = AWQ_GRID,
    base_mode: str = "asym",
) -> torch.Tensor:
    """Per-input-channel scales s [K] minimizing ||X W^T - X (Q(W * s) / s)^T||^2 over s = mean|X|^alpha.

    weight: [N, K]; activations: [T, K] rows captured from a calibration run (see calibration.py).
    alpha = 0 gives s = 1 (plain group-wise), so the search never does worse than `base_mode` on
    the calibration rows.
    """
    w = weight.detach().to(torch.float32)
    x = activations.detach().to(torch.float32).reshape(-1, w.shape[1])  # [T, K]
    x_mean = x.abs().mean(dim=0).clamp(min=1e-8)  # [K]
    y_ref = x @ w.T  # [T, N]
    best_err, best = float("inf"), torch.ones_like(x_mean)
    for i in range(grid):
        alpha = i / grid
        s = x_mean.pow(alpha)
        s = s / (s.max() * s.min()).sqrt()  # centre the scales around 1
        w_q = fake_quantize(w * s, base_mode, group_size) / s
        err = (x @ w_q.T - y_ref).pow(2).mean().item()
        if err < best_err:
            best_err, best = err, s
    return best


def awq_quantize(
    weight: torch.Tensor, activations: torch.Tensor, group_size: int, *, base_mode: str = "asym"
) -> tuple[Int4Weight, torch.Tensor]:
    """Search scales, quantize W * s. Returns (quantized scaled weight, input multiplier 1 / s [K])."""
    s = awq_search_scales(weight, activations, group_size, base_mode=base_mode)
    qw = quantize(weight.detach().to(torch.float32) * s, base_mode, group_size)
    return qw, (1.0 / s).to(torch.float32)
