"""GPTQ (Frantar et al., 2022) into the reference int4 layout: round columns one by one and push each
column's rounding error onto the columns not yet rounded, weighted by the inverse Hessian of the
layer's inputs, so the layer's *output* error on real activations is what gets minimised.

With `act_order` the columns are rounded in decreasing order of their Hessian diagonal (the inputs
with the most energy first, while the most columns are left to absorb their error), and each group's
grid is fixed up front from the original weights ("static groups"), so groups stay contiguous in
storage and the kernels are unchanged. On the embedded model this cuts the int4 perplexity cost from
+4.8 % to +3.9 % (bench quant slice, session 3).

Why here: plain round-to-nearest on the embedded model (whose weights are already a 5-bit GGUF grid)
costs +5 % perplexity at group 32; GPTQ with a clipped-range search per group costs less than that
for the same bytes and the same kernels (the result is an ordinary asymmetric `Int4Weight`).

The Hessian is `H = sum_t x_t x_t^T` over calibration inputs of the linear (`calibration.py`);
its scale does not matter (the damping is relative to its mean diagonal).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from codegeex_lsp.quant.reference import QMAX, Int4Weight, _to_fp16_exact, check_group_size

CLIP_GRID = tuple(1.0 - 0.02 * i for i in range(20))  # range shrink factors tried per group
BLOCK = 128  # columns updated lazily together (the paper's batching; any multiple of the group size)
DAMP = 0.01  # added to H's diagonal, relative to its mean: keeps the Cholesky factor well defined


def clipped_asym_params(w: torch.Tensor, grid: tuple[float, ...] = CLIP_GRID) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (scale [N], zero [N]) of the asymmetric grid for a group w [N, G], choosing among
    shrunk min/max ranges the one with the least squared rounding error (llama.cpp and AWQ clip the
    same way: a few outliers should not stretch the step for the whole group); the first of equals.

    Every candidate's grid is computed at once ([C, N]); each candidate's error is then nine in-place
    passes over one buffer with scalar clamp bounds (a clamp to per-row tensor bounds is 15x slower
    on CPU), about 3x faster than fresh tensors per step, with the same arithmetic.
    """
    w_min = w.amin(dim=-1).clamp(max=0.0)
    w_max = w.amax(dim=-1).clamp(min=0.0)
    shrink = torch.tensor(grid, dtype=torch.float32)[:, None]  # [C, 1]
    scales = _to_fp16_exact((w_max - w_min) * shrink / QMAX)  # [C, N]
    safe = torch.where(scales > 0, scales, 1.0)
    zeros = torch.round(-w_min * shrink / safe).clamp(0, QMAX)
    errs = torch.empty(scales.shape)
    t = torch.empty(w.shape)
    for c in range(len(grid)):
        scale, zero = scales[c, :, None], zeros[c, :, None]
        torch.div(w, safe[c, :, None], out=t)
        torch.round(t, out=t)
        t.add_(zero).clamp_(0, QMAX).sub_(zero)  # the code's offset from the zero point
        t.mul_(scale).sub_(w).square_()
        torch.sum(t, dim=-1, out=errs[c])
    best = errs.argmin(dim=0, keepdim=True)  # the first minimum, as a running strict `<` keeps
    return scales.gather(0, best)[0], zeros.gather(0, best)[0]


def _inverse_cholesky_upper(h: torch.Tensor) -> torch.Tensor:
    """Upper Cholesky factor U of H^-1 (H^-1 = U^T U), without forming H^-1.

    With J the order reversal, J H J = L L^T gives U = J L^-1 J: one Cholesky and one triangular
    inverse (about 2/3 K^3 flops), where Cholesky, `cholesky_inverse` and Cholesky again cost 4/3 K^3
    and torch's CPU `cholesky_inverse` is slow besides (110 s against 5 s for K=4864 on 2 cores).
    """
    return _inverse_cholesky_upper_of_reversed(h.flip(0, 1).to(torch.float32))


def _inverse_cholesky_upper_of_reversed(h_rev: torch.Tensor) -> torch.Tensor:
    """U as above from J H J, float32 [K, K] (gptq_quantize gathers it reversed directly: no flip
    copy), overwritten. float32 like the paper's reference; float64 only if float32 is not
    positive definite."""
    scale = torch.diagonal(h_rev).mean()
    h_rev /= scale
    for dtype in (torch.float32, torch.float64):
        lower, info = torch.linalg.cholesky_ex(h_rev.to(dtype))
        if int(info) == 0:
            u = _lower_triangular_inverse(lower).flip(0, 1)
            return u.div_(scale.to(dtype).sqrt()).to(torch.float32)
    raise ValueError("GPTQ: the damped Hessian is not positive definite")


def _lower_triangular_inverse(lower: torch.Tensor, leaf: int = 256) -> torch.Tensor:
    """L^-1 by halves, [[A, 0], [B, C]]^-1 = [[A^-1, 0], [-C^-1 B A^-1, C^-1]]: the work goes to
    blocked triangular solves instead of one K-column solve against the identity (2.3x faster at
    K=4864, one thread; two triangular solves for C^-1 B A^-1 take 1/3 K^3 flops in all, where
    products of the full inverses took 2/3 K^3: 0.70 s against 0.89 s)."""
    n = lower.shape[0]
    if n <= leaf:
        eye = torch.eye(n, dtype=lower.dtype)
        return torch.linalg.solve_triangular(lower, eye, upper=False)
    half = n // 2
    a, b, c = lower[:half, :half], lower[half:, :half], lower[half:, half:]
    out = torch.zeros_like(lower)
    out[:half, :half] = _lower_triangular_inverse(a, leaf)
    out[half:, half:] = _lower_triangular_inverse(c, leaf)
    out[half:, :half] = -torch.linalg.solve_triangular(c, torch.linalg.solve_triangular(a, b, upper=False, left=False), upper=False)
    return out


ROW_CHUNK_ELEMENTS = 1 << 19  # rows swept together: a block of them (~2 MB) stays in cache


def gptq_quantize(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    group_size: int,
    *,
    block: int = BLOCK,
    damp: float = DAMP,
    grid: tuple[float, ...] = CLIP_GRID,
    act_order: bool = False,
) -> Int4Weight:
    """weight [N, K], hessian [K, K] (sum of x x^T over calibration inputs) -> asymmetric Int4Weight.

    Without `act_order`, group parameters are chosen when the sweep reaches each group, from the
    weights as updated by the error feedback so far (the paper's grouping). With it, columns go in
    decreasing diag(H) order against grids fixed beforehand per group. Either way groups stay
    contiguous for the kernels. Inputs never seen in calibration (zero diagonal) get a unit
    Hessian diagonal, and with act order they go last.

    Rows never interact (each row's error feeds only its own later columns), so tall weights such
    as the lm head are swept a chunk of rows at a time, which keeps the block being updated in cache.
    """
    n_out, n_in = weight.shape
    check_group_size(n_in, group_size)
    if hessian.shape != (n_in, n_in):
        raise ValueError(f"hessian must be [{n_in}, {n_in}] for a weight [{n_out}, {n_in}], got {list(hessian.shape)}")
    block = max(group_size, block - block % group_size)
    w = weight.detach().to(torch.float32)
    diag = torch.diagonal(hessian).to(torch.float32)
    dead = diag <= 0
    n_groups = n_in // group_size
    if act_order:
        scales, zeros = _static_group_params(w, group_size, grid)
        perm = torch.argsort(torch.where(dead, -1.0, diag), descending=True, stable=True)
    else:
        scales = torch.empty(n_out, n_groups)
        zeros = torch.empty(n_out, n_groups)
        perm = torch.arange(n_in)
    # The Hessian in sweep order and reversed (J P H P J, what the Cholesky step takes), one gather
    # in float32 (the collector sums in float32): no float64 copies of a [4864, 4864] matrix.
    rev = perm.flip(0)
    h = hessian.detach().to(torch.float32).index_select(0, rev).index_select(1, rev)
    h_diag = torch.diagonal(h)
    h_diag[dead[rev]] = 1.0  # an input never seen: a unit diagonal, and no correlations to speak of
    h_diag += damp * h_diag.mean()
    # Row i of U holds how column i's rounding error spreads to the later columns.
    u = _inverse_cholesky_upper_of_reversed(h)
    group_of = (perm // group_size).tolist()
    q = torch.empty(n_out, n_in, dtype=torch.uint8)
    rows = max(1, ROW_CHUNK_ELEMENTS // block)
    for r0 in range(0, n_out, rows):
        r1 = min(n_out, r0 + rows)
        q[r0:r1] = _sweep(w[r0:r1, perm], u, scales[r0:r1], zeros[r0:r1], group_of, group_size, block, grid, act_order)
    codes_out = torch.empty_like(q)
    codes_out[:, perm] = q
    return Int4Weight(q=codes_out, scale=scales, zero=zeros.to(torch.uint8), group_size=group_size)


def _static_group_params(
    w: torch.Tensor, group_size: int, grid: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero) [N, n_groups] of every group of the original weights, a chunk of rows at a time."""
    n_out, n_in = w.shape
    n_groups = n_in // group_size
    scales = torch.empty(n_out, n_groups)
    zeros = torch.empty(n_out, n_groups)
    rows = max(1, ROW_CHUNK_ELEMENTS // n_in)
    for r0 in range(0, n_out, rows):
        r1 = min(n_out, r0 + rows)
        s, z = clipped_asym_params(w[r0:r1].reshape(-1, group_size), grid)
        scales[r0:r1] = s.reshape(r1 - r0, n_groups)
        zeros[r0:r1] = z.reshape(r1 - r0, n_groups)
    return scales, zeros


INNER = 32  # columns fed back one by one before a product pushes them on through the block


def _sweep(
    w: torch.Tensor,
    u: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    group_of: list[int],
    group_size: int,
    block: int,
    grid: tuple[float, ...],
    act_order: bool,
) -> torch.Tensor:
    """Codes [n, K] (in sweep order) of rows w [n, K] (columns in sweep order), writing the group
    grids into scales/zeros [n, n_groups] when they are chosen during the sweep (no act order).

    Works on w transposed, [K, n], so each column is one contiguous row, and feeds errors back at
    three levels: one by one inside INNER columns (the only O(n * K * INNER) elementwise work),
    by a product into the rest of the `block`, and by a product into the columns after it.
    """
    n_in = w.shape[1]
    wt = w.T.contiguous()  # [K, n]
    codes = torch.empty(wt.shape)  # [K, n], float codes: one uint8 conversion at the end
    scale_t, zero_t = scales.T.contiguous(), zeros.T.contiguous()  # per group: a contiguous row
    inner = math.gcd(min(INNER, block), group_size)  # a run never straddles two groups
    for start in range(0, n_in, block):
        end = min(start + block, n_in)
        err = torch.empty(end - start, wt.shape[1])  # [B, n]
        u_block = u[start:end, start:end]
        for i0 in range(0, end - start, inner):
            i1 = min(i0 + inner, end - start)
            if act_order:  # each column's own group grid, fixed up front
                groups = group_of[start + i0 : start + i1]
                run_scale, run_zero = scale_t[groups], zero_t[groups]
            else:  # one group, its grid chosen from the updated weights at its first column
                g = group_of[start + i0]
                if (start + i0) % group_size == 0:
                    s, z = clipped_asym_params(wt[start + i0 : start + i0 + group_size].T, grid)
                    scales[:, g], zeros[:, g], scale_t[g], zero_t[g] = s, z, s, z
                run_scale, run_zero = scale_t[g].expand(i1 - i0, -1), zero_t[g].expand(i1 - i0, -1)
            _round_run(wt, codes, err, u_block, run_scale, run_zero, start, i0, i1)
            if i1 < end - start:  # the rest of the block
                wt[start + i1 : end].addmm_(u_block[i0:i1, i1:].T, err[i0:i1], alpha=-1.0)
        if end < n_in:
            wt[end:].addmm_(u[start:end, end:].T, err, alpha=-1.0)
    return codes.T.to(torch.uint8)


def _round_run(
    wt: torch.Tensor,
    codes: torch.Tensor,
    err: torch.Tensor,
    u_block: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor,
    start: int,
    i0: int,
    i1: int,
) -> None:
    """Round columns start+i0 .. start+i1 of wt [K, n] one by one on their grids (scale, zero
    [i1 - i0, n]), each one's error (into err [B, n]) fed back into the columns after it up to i1."""
    positive = scale > 0
    safe = torch.where(positive, scale, torch.ones_like(scale))
    all_positive = bool(positive.all())
    run = wt[start + i0 : start + i1]  # [r, n], a view: updates land in wt
    for j in range(i1 - i0):
        i = i0 + j
        col = run[j]
        q = codes[start + i]
        torch.div(col, safe[j], out=q)
        q.round_().add_(zero[j]).clamp_(0, QMAX)
        if not all_positive:
            torch.where(positive[j], q, zero[j], out=q)
        e = err[i]
        torch.sub(q, zero[j], out=e)
        e.mul_(scale[j])
        torch.sub(col, e, out=e)
        e.div_(u_block[i, i])
        if j + 1 < i1 - i0:
            run[j + 1 :].addr_(u_block[i, i + 1 : i1], e, alpha=-1.0)


JOB_ROWS = 16384  # a taller weight (the lm head's 151936 rows) is quantized in parts of this many rows


def gptq_quantize_many(
    jobs: Iterable[tuple[torch.Tensor, torch.Tensor, int]],
    *,
    act_order: bool = False,
    workers: int | None = None,
) -> Iterator[Int4Weight]:
    """`gptq_quantize(weight, hessian, group_size)` of each job, yielded in order, `workers`
    (default: torch's thread count) at a time on threads of one intra-op thread each.

    Why threads over whole linears: the sweep is thousands of small ops per linear, and torch's
    2-thread OpenMP splits each one behind a barrier; on a busy host one descheduled thread stalls
    every op (measured: w_gate_up 0.8 CPU-s on one thread, 18 CPU-s on two at load 3). Threads
    release the GIL inside torch ops, so independent linears run side by side without barriers.
    Row parts of a tall weight are cut at fixed JOB_ROWS and every part runs on one thread, so
    the codes do not depend on `workers`. At most 2 x `workers` jobs are in flight.
    """
    threads = torch.get_num_threads()
    workers = max(1, workers or threads)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="gptq", initializer=torch.set_num_threads, initargs=(1,))
    pending: deque[list[Future[Int4Weight]]] = deque()
    todo = iter(jobs)

    def submit_next() -> None:
        job = next(todo, None)
        if job is not None:
            w, h, g = job
            parts = range(0, w.shape[0], JOB_ROWS)
            pending.append(
                [pool.submit(gptq_quantize, w[r0 : r0 + JOB_ROWS], h, g, act_order=act_order) for r0 in parts]
            )

    try:
        for _ in range(2 * workers):
            submit_next()
        while pending:
            parts = [future.result() for future in pending.popleft()]
            submit_next()
            yield parts[0] if len(parts) == 1 else _stack_rows(parts)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)  # a worker's set_num_threads(1) also moved torch's default


def _stack_rows(parts: list[Int4Weight]) -> Int4Weight:
    return Int4Weight(
        q=torch.cat([p.q for p in parts]),
        scale=torch.cat([p.scale for p in parts]),
        zero=torch.cat([p.zero for p in parts]),
        group_size=parts[0].group_size,
    )

