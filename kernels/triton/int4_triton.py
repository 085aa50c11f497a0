"""Triton W4A16 GEMM/GEMV over the packed int4 layout of kernels/int4_layout.h (no repack).

Ships as `codegeex_lsp.triton_kernels.int4_triton`. Each program computes a [BLOCK_M, BLOCK_N] tile of
y = x @ W.T. Per 256-input super-block it loads [BLOCK_N, 128] bytes; byte p = 32i + 4j + t holds
inputs 32j + 8i + t (low nibble) and + 4 (high), so instead of shuffling the weights it gathers the
activations in that order, dequantizes each nibble plane with the per-group fp16 scale and zero point
(read from the same rows) and accumulates two `tl.dot`s in fp32; the 128-input half-block likewise.
The rest is in 64-input chunks (low nibbles: inputs 0..31, high: 32..63) and maybe a 32-input tail. Activations stay in their
dtype (fp16/bf16 on GPU; fp32 uses IEEE dots). Runs on CUDA, and on CPU tensors under TRITON_INTERPRET=1
(how the tests check it against the reference).
"""

from __future__ import annotations

import torch

import triton
import triton.language as tl


@triton.jit
def _load_group_params(row, g, D_OFF: tl.constexpr, Z_OFF: tl.constexpr, n_mask):
    """Per-row (scale float32, zero float32) of group g; row: [BLOCK_N] byte pointers."""
    d_lo = tl.load(row + D_OFF + 2 * g, mask=n_mask, other=0).to(tl.uint16)
    d_hi = tl.load(row + D_OFF + 2 * g + 1, mask=n_mask, other=0).to(tl.uint16)
    d = (d_lo | (d_hi << 8)).to(tl.float16, bitcast=True).to(tl.float32)
    z = tl.load(row + Z_OFF + g, mask=n_mask, other=0).to(tl.float32)
    return d, z


@triton.jit
def _dequant(codes, d, z):
    """codes [BLOCK_N, W] uint8 -> float32 d * (q - z)."""
    return (codes.to(tl.float32) - z[:, None]) * d[:, None]


@triton.jit
def _dequant_gather(codes, row, g, D_OFF: tl.constexpr, Z_OFF: tl.constexpr, n_mask):
    """codes [BLOCK_N, W] with per-column group indices g [W] -> float32 d * (q - z)."""
    mask = n_mask[:, None]
    off = row[:, None] + D_OFF + 2 * g[None, :]
    d_lo = tl.load(off, mask=mask, other=0).to(tl.uint16)
    d_hi = tl.load(off + 1, mask=mask, other=0).to(tl.uint16)
    d = (d_lo | (d_hi << 8)).to(tl.float16, bitcast=True).to(tl.float32)
    z = tl.load(row[:, None] + Z_OFF + g[None, :], mask=mask, other=0).to(tl.float32)
    return (codes.to(tl.float32) - z) * d


@triton.jit
def _int4_gemm_kernel(
    x_ptr,
    p_ptr,
    b_ptr,
    y_ptr,
    M,
    N,
    K: tl.constexpr,
    G: tl.constexpr,
    RB: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BM]
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BN]
    m_mask = rm < M
    n_mask = rn < N
    row = p_ptr + rn.to(tl.int64) * RB  # [BN] start of each packed row
    x_row = x_ptr + rm.to(tl.int64) * K  # [BM]
    D_OFF: tl.constexpr = K // 2
    Z_OFF: tl.constexpr = K // 2 + 2 * (K // G)
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)  # a builtin: works however triton was imported
    p = tl.arange(0, 128)  # byte of a super-block: 32i + 4j + t
    e_lo = 32 * ((p % 32) // 4) + 8 * (p // 32) + p % 4  # its low-nibble input; high = + 4
    for sb in range(K // 256):
        b = tl.load(row[:, None] + sb * 128 + p[None, :], mask=n_mask[:, None], other=0)  # [BN, 128] u8
        k_lo = sb * 256 + e_lo
        x_lo = tl.load(x_row[:, None] + k_lo[None, :], mask=m_mask[:, None], other=0.0)  # [BM, 128]
        x_hi = tl.load(x_row[:, None] + (k_lo + 4)[None, :], mask=m_mask[:, None], other=0.0)
        w_lo = _dequant_gather(b & 0xF, row, k_lo // G, D_OFF, Z_OFF, n_mask).to(x_lo.dtype)
        w_hi = _dequant_gather(b >> 4, row, (k_lo + 4) // G, D_OFF, Z_OFF, n_mask).to(x_lo.dtype)
        if IEEE:
            acc += tl.dot(x_lo, tl.trans(w_lo), input_precision="ieee")
            acc += tl.dot(x_hi, tl.trans(w_hi), input_precision="ieee")
        else:
            acc += tl.dot(x_lo, tl.trans(w_lo))
            acc += tl.dot(x_hi, tl.trans(w_hi))
    SB_ELEMS: tl.constexpr = (K // 256) * 256
    HALF: tl.constexpr = K % 256 >= 128
    if HALF:  # 128-input half-block: byte p = 32i + 4j + t -> input 32(j % 4) + 16i + 8(j // 4) + t, + 4
        q = tl.arange(0, 64)
        jq = (q % 32) // 4
        k_lo = SB_ELEMS + 32 * (jq % 4) + 16 * (q // 32) + 8 * (jq // 4) + q % 4
        b = tl.load(row[:, None] + SB_ELEMS // 2 + q[None, :], mask=n_mask[:, None], other=0)  # [BN, 64]
        x_lo = tl.load(x_row[:, None] + k_lo[None, :], mask=m_mask[:, None], other=0.0)  # [BM, 64]
        x_hi = tl.load(x_row[:, None] + (k_lo + 4)[None, :], mask=m_mask[:, None], other=0.0)
        w_lo = _dequant_gather(b & 0xF, row, k_lo // G, D_OFF, Z_OFF, n_mask).to(x_lo.dtype)
        w_hi = _dequant_gather(b >> 4, row, (k_lo + 4) // G, D_OFF, Z_OFF, n_mask).to(x_lo.dtype)
        if IEEE:
            acc += tl.dot(x_lo, tl.trans(w_lo), input_precision="ieee")
            acc += tl.dot(x_hi, tl.trans(w_hi), input_precision="ieee")
        else:
            acc += tl.dot(x_lo, tl.trans(w_lo))
            acc += tl.dot(x_hi, tl.trans(w_hi))
    HALF_END: tl.constexpr = SB_ELEMS + 128 * HALF
    j32 = tl.arange(0, 32)
    for c in range((K - HALF_END) // 64):
        b = tl.load(row[:, None] + HALF_END // 2 + c * 32 + j32[None, :], mask=n_mask[:, None], other=0)
        k0 = HALF_END + c * 64
        d_lo, z_lo = _load_group_params(row, k0 // G, D_OFF, Z_OFF, n_mask)
        d_hi, z_hi = _load_group_params(row, (k0 + 32) // G, D_OFF, Z_OFF, n_mask)
        x_lo = tl.load(x_row[:, None] + k0 + j32[None, :], mask=m_mask[:, None], other=0.0)  # [BM, 32]
        x_hi = tl.load(x_row[:, None] + k0 + 32 + j32[None, :], mask=m_mask[:, None], other=0.0)
        w_lo = _dequant(b & 0xF, d_lo, z_lo).to(x_lo.dtype)
        w_hi = _dequant(b >> 4, d_hi, z_hi).to(x_lo.dtype)
        if IEEE:
            acc += tl.dot(x_lo, tl.trans(w_lo), input_precision="ieee")
            acc += tl.dot(x_hi, tl.trans(w_hi), input_precision="ieee")
        else:
            acc += tl.dot(x_lo, tl.trans(w_lo))
            acc += tl.dot(x_hi, tl.trans(w_hi))
    if K % 64:  # 32-input tail: byte j holds input j (low) and 16 + j (high); its group is the last
        j16 = tl.arange(0, 16)
        T: tl.constexpr = (K // 64) * 32
        b = tl.load(row[:, None] + T + j16[None, :], mask=n_mask[:, None], other=0)  # [BN, 16]
        d, z = _load_group_params(row, K // G - 1, D_OFF, Z_OFF, n_mask)
        x_lo = tl.load(x_row[:, None] + (K - 32) + j16[None, :], mask=m_mask[:, None], other=0.0)
        x_hi = tl.load(x_row[:, None] + (K - 16) + j16[None, :], mask=m_mask[:, None], other=0.0)
        w_lo = _dequant(b & 0xF, d, z).to(x_lo.dtype)
        w_hi = _dequant(b >> 4, d, z).to(x_lo.dtype)
        if IEEE:
            acc += tl.dot(x_lo, tl.trans(w_lo), input_precision="ieee")
            acc += tl.dot(x_hi, tl.trans(w_hi), input_precision="ieee")
        else:
            acc += tl.dot(x_lo, tl.trans(w_lo))
            acc += tl.dot(x_hi, tl.trans(w_hi))
    if HAS_BIAS:
        acc += tl.load(b_ptr + rn, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    y = y_ptr + rm.to(tl.int64)[:, None] * N + rn[None, :]
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


def _row_bytes(in_features: int, group_size: int) -> int:
    raw = in_features // 2 + 3 * (in_features // group_size) + 3  # + the layout's 3 bytes of slack
    return (raw + 31) // 32 * 32


def int4_gemm(
    x: torch.Tensor,
    packed: torch.Tensor,
    in_features: int,
    group_size: int,
    bias: torch.Tensor | None = None,
    *,
    block_n: int = 64,
) -> torch.Tensor:
    """y [..., N] = x [..., K] @ W.T + bias, W the packed int4 [N, row_bytes]; y in x's dtype."""
    k = in_features
    if packed.dtype != torch.uint8 or packed.shape[-1] != _row_bytes(k, group_size) or k % group_size:
        raise ValueError(f"packed {tuple(packed.shape)} does not fit K={k}, G={group_size}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k).contiguous()  # [M, K]
    m, n = x2.shape[0], packed.shape[0]
    y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0:
        return y.reshape(*lead, n)
    block_m = 16 if m <= 16 else 64
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    _int4_gemm_kernel[grid](
        x2,
        packed.contiguous(),
        bias.contiguous() if bias is not None else y,
        y,
        m,
        n,
        K=k,
        G=group_size,
        RB=packed.shape[-1],
        HAS_BIAS=bias is not None,
        IEEE=x.dtype == torch.float32,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
    )
    return y.reshape(*lead, n)
