"""Op-level A/B of a two-plane int4 linear on the gate|up shape (9728 x 896, G = 32), one thread:
8-bit codes split into two planes (recipe s8: joined into one dot product on AVX-512 VNNI) against
a GPTQ-style pair (first plane plus its quantized error: plane by plane) and a single plane.
Variants alternate within each round, so host speed drifts hit all of them alike.

    python scripts/experiments/joined_planes_ab.py [--path avx512] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from codegeex_lsp.quant import ops, packing
from codegeex_lsp.quant import reference as R


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default="avx512", choices=ops.CPU_PATHS)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    n, k, g = 9728, 896, 32
    w = torch.randn(n, k) * 0.03
    high, low = R.quantize_8bit_split(w, g)
    first = R.quantize(w, "asym", g)
    error = R.quantize(w - R.dequantize_groupwise(first), "asym", g)
    variants = {
        "8-bit pair": (packing.pack_int4(high), packing.pack_int4(low)),
        "int4 + residual": (packing.pack_int4(first), packing.pack_int4(error)),
        "one plane": (packing.pack_int4(first), None),
    }
    op = torch.ops.codegeex_lsp.int4_gemm_impl
    for m in (128, 1):
        x = torch.randn(m, k)
        reps = 3 if m > 1 else 200
        times: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for name, (p1, p2) in variants.items():
                started = time.perf_counter()
                for _ in range(reps):
                    op(x, p1, k, g, None, args.path, p2)
                times[name].append((time.perf_counter() - started) / reps * 1e3)
        base = times["int4 + residual"]
        print(f"{m} activation rows, path {args.path}, median ms (ratio to int4 + residual, per round):")
        for name, t in times.items():
            ratio = statistics.median(a / b for a, b in zip(t, base, strict=True))
            print(f"  {name:16s} {statistics.median(t):8.3f} ms  {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
