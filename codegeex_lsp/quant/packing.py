"""The packed int4 layout the kernels read, mirrored from kernels/int4_layout.h (the definition).

One uint8 tensor [N, row_bytes] per weight [N, K], one row per output, group size G, ng = K / G:

    offset 0           qs  K/2 bytes  the codes 0..15 (below)
    offset K/2         d   ng fp16    per-group scale (little endian)
    offset K/2 + 2ng   z   ng uint8   per-group zero point (symmetric: 8)
    >= 3 bytes of zero padding, then up to a multiple of ROW_ALIGN bytes

w[n, k] = d[g] * (q[k] - z[g]). qs starts with K // 256 super-blocks of 256 inputs: four 32-byte
vectors, byte 4j + t of vector i holding input 32j + 8i + t (low nibble) and 32j + 8i + 4 + t (high),
so each 32-bit lane of an unpacked vector is one 32-input block. If K % 256 >= 128, a half-block of
128 inputs follows: two vectors, byte 4j + t of vector i = input 32(j % 4) + 16i + 8(j // 4) + t | + 4.
The rest is in 64-input chunks (byte j = input j | input 32 + j) and, if K % 64 == 32, a 32-input tail
(byte j = j | 16 + j). An embedding lookup of token t is the dequantization of row t.
"""

from __future__ import annotations

import torch

from codegeex_lsp.quant.reference import Int4Weight, check_group_size, dequantize_groupwise

LAYOUT_VERSION = 2  # CG_Q4_LAYOUT_VERSION
SUPERBLOCK_ELEMS = 256  # CG_Q4_SUPERBLOCK_ELEMS
HALFBLOCK_ELEMS = 128  # cg_q4_halfblock
CHUNK_ELEMS = 64  # CG_Q4_CHUNK_ELEMS
TAIL_ELEMS = 32  # CG_Q4_TAIL_ELEMS
ACT_BLOCK = 32  # CG_Q4_ACT_BLOCK
ROW_ALIGN = 32  # CG_Q4_ROW_ALIGN
ROW_SLACK = 3  # bytes after the zero points a kernel may read


def row_bytes(in_features: int, group_size: int) -> int:
    """Bytes per packed row (cg_q4_row_bytes)."""
    n_groups = in_features // group_size
    raw = in_features // 2 + 3 * n_groups + ROW_SLACK
    return (raw + ROW_ALIGN - 1) // ROW_ALIGN * ROW_ALIGN


def packed_nbytes(out_features: int, in_features: int, group_size: int) -> int:
    return out_features * row_bytes(in_features, group_size)


def _regions(n_in: int) -> tuple[int, int, int]:
    """Ends of the super-block, half-block and chunk regions (cg_q4_sb_end / half_end / chunk_end)."""
    sb_end = n_in // SUPERBLOCK_ELEMS * SUPERBLOCK_ELEMS
    half_end = sb_end + (HALFBLOCK_ELEMS if n_in - sb_end >= HALFBLOCK_ELEMS else 0)
    return sb_end, half_end, half_end + (n_in - half_end) // CHUNK_ELEMS * CHUNK_ELEMS


def _pack_codes(q: torch.Tensor) -> torch.Tensor:
    """codes [N, K] uint8 -> qs [N, K / 2] in the layout's order."""
    n_out, n_in = q.shape
    sb_end, half_end, chunk_end = _regions(n_in)
    parts = []
    if sb_end:
        # input 32j + 8i + 4h + t -> byte 32i + 4j + t of its super-block, nibble h
        sb = q[:, :sb_end].reshape(n_out, sb_end // 256, 8, 4, 2, 4)  # [N, sb, j, i, h, t]
        sb = sb.permute(0, 1, 3, 2, 5, 4)  # [N, sb, i, j, t, h]
        parts.append((sb[..., 0] | (sb[..., 1] << 4)).reshape(n_out, sb_end // 2))
    if half_end > sb_end:
        # input 32b + 16i + 8p + 4h + t -> byte 32i + 4(b + 4p) + t, nibble h
        hb = q[:, sb_end:half_end].reshape(n_out, 4, 2, 2, 2, 4)  # [N, b, i, p, h, t]
        hb = hb.permute(0, 2, 3, 1, 5, 4)  # [N, i, p, b, t, h]
        parts.append((hb[..., 0] | (hb[..., 1] << 4)).reshape(n_out, 64))
    if chunk_end > half_end:
        body = q[:, half_end:chunk_end].reshape(n_out, -1, 2, 32)  # [N, c, low|high, j]
        parts.append((body[:, :, 0] | (body[:, :, 1] << 4)).reshape(n_out, (chunk_end - half_end) // 2))
    if n_in > chunk_end:
        tail = q[:, chunk_end:].reshape(n_out, 2, 16)
        parts.append(tail[:, 0] | (tail[:, 1] << 4))
    return torch.cat(parts, dim=1)


def _unpack_codes(qs: torch.Tensor, n_in: int) -> torch.Tensor:
    """qs [N, K / 2] -> codes [N, K] uint8 in input order (inverse of `_pack_codes`)."""
    n_out = qs.shape[0]
    sb_end, half_end, chunk_end = _regions(n_in)
    parts = []
    if sb_end:
        b = qs[:, : sb_end // 2].reshape(n_out, sb_end // 256, 4, 8, 4, 1)  # [N, sb, i, j, t, 1]
        sb = torch.cat([b & 0x0F, b >> 4], dim=-1)  # [N, sb, i, j, t, h]
        parts.append(sb.permute(0, 1, 3, 2, 5, 4).reshape(n_out, sb_end))
    if half_end > sb_end:
        b = qs[:, sb_end // 2 : half_end // 2].reshape(n_out, 2, 2, 4, 4, 1)  # [N, i, p, b, t, 1]
        hb = torch.cat([b & 0x0F, b >> 4], dim=-1)  # [N, i, p, b, t, h]
        parts.append(hb.permute(0, 3, 1, 2, 5, 4).reshape(n_out, HALFBLOCK_ELEMS))
    if chunk_end > half_end:
        body = qs[:, half_end // 2 : chunk_end // 2].reshape(n_out, -1, 1, 32)
        parts.append(torch.cat([body & 0x0F, body >> 4], dim=2).reshape(n_out, chunk_end - half_end))
    if n_in > chunk_end:
        tail = qs[:, chunk_end // 2 :].reshape(n_out, 1, 16)
        parts.append(torch.cat([tail & 0x0F, tail >> 4], dim=1).reshape(n_out, TAIL_ELEMS))
    return torch.cat(parts, dim=1)


def act_positions(in_features: int) -> torch.Tensor:
    """[K] int64: where the CPU kernels keep the int8 activation of input k (cg_q4_act_pos)."""
    k = torch.arange(in_features)
    sb_end, half_end, _ = _regions(in_features)
    e = k % SUPERBLOCK_ELEMS
    in_sb = (
        k // SUPERBLOCK_ELEMS * SUPERBLOCK_ELEMS
        + (e % 32 // 8) * 64
        + (e % 8 // 4) * 32
        + (e // 32) * 4
        + e % 4
    )
    h = k - sb_end
    in_half = sb_end + (h % 32 // 16) * 64 + (h % 8 // 4) * 32 + (h // 32 + 4 * (h % 16 // 8)) * 4 + h % 4
    return torch.where(k < sb_end, in_sb, torch.where(k < half_end, in_half, k))


def pack_int4(qw: Int4Weight) -> torch.Tensor:
    """Int4Weight -> packed uint8 [N, row_bytes]."""
    n_out, n_in = qw.shape
    g = qw.group_size
    check_group_size(n_in, g)
    n_groups = n_in // g
    out = torch.zeros(n_out, row_bytes(n_in, g), dtype=torch.uint8)
    out[:, : n_in // 2] = _pack_codes(qw.q.to(torch.uint8))
    d_off = n_in // 2
    out[:, d_off : d_off + 2 * n_groups] = qw.scale.to(torch.float16).contiguous().view(torch.uint8)
    out[:, d_off + 2 * n_groups : d_off + 3 * n_groups] = qw.zero.to(torch.uint8)
    return out


def unpack_int4(packed: torch.Tensor, in_features: int, group_size: int) -> Int4Weight:
    """packed uint8 [N, row_bytes] -> Int4Weight (exact inverse of `pack_int4`)."""
    check_group_size(in_features, group_size)
    if (
        packed.dtype != torch.uint8
        or packed.dim() != 2
        or packed.shape[1] != row_bytes(in_features, group_size)
    ):
        raise ValueError(
            f"packed weight {tuple(packed.shape)} {packed.dtype} does not match layout v{LAYOUT_VERSION} "
            f"for in_features={in_features}, group_size={group_size}"
        )
    n_groups = in_features // group_size
    p = packed.cpu()
    d_off = in_features // 2
    q = _unpack_codes(p[:, :d_off], in_features)
    scale = p[:, d_off : d_off + 2 * n_groups].contiguous().view(torch.float16).to(torch.float32)
    zero = p[:, d_off + 2 * n_groups : d_off + 3 * n_groups].contiguous()
    return Int4Weight(q=q.contiguous(), scale=scale, zero=zero, group_size=group_size)


def dequantize_packed(packed: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    """packed [N, row_bytes] -> float32 [N, K] (the reference dequantization)."""
    return dequantize_groupwise(unpack_int4(packed, in_features, group_size)).to(packed.device)
