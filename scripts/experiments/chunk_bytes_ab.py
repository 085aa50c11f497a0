"""Decode speed of the fused int4 step for chunk byte bounds, interleaved in one process.

    python scripts/experiments/chunk_bytes_ab.py 0,65536 8     # bounds (0 = none), rounds

Each round times 64 fused steps per bound from the same cache position, the bounds in alternating
order, so a VM's drifting throughput hits every bound alike; prints mean ± sd per bound and the
paired ratio of the last bound to the first. Chunking cannot change results
(tests/slow/test_fused_decode_real.py), only speed.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine import fused_decode
from codegeex_lsp.engine.load import load_model

STEPS = 64


def main() -> None:
    bounds = [int(v) for v in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0, 65536]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    loaded = load_model(EngineOptions(quant="int4", threads=2))
    model, tokenizer = loaded.model, loaded.tokenizer
    plan = fused_decode.plan_for(model)
    if plan is None:
        raise SystemExit(f"no fused step: {fused_decode.unsupported_reason(model)}")
    text = "import json\nfrom pathlib import Path\n\n\ndef load_config(path: str) -> dict:\n    " * 3
    ids = torch.tensor([tokenizer.encode(text)])
    cache = model.new_cache(1, 512)
    rates: dict[int, list[float]] = {b: [] for b in bounds}
    with torch.inference_mode():
        model(ids, 0, cache)
        start = ids.shape[1]
        x = model.tok_embeddings(torch.tensor([[tokenizer.encode(" x")[0]]]))
        for round_ in range(rounds + 1):  # round 0 warms up
            for bound in bounds if round_ % 2 == 0 else bounds[::-1]:
                plan.set_chunk_bytes(bound)
                t = time.perf_counter()
                for i in range(STEPS):
                    plan.step(x, start + i, cache.k, cache.v)
                if round_:
                    rates[bound].append(STEPS / (time.perf_counter() - t))
    for bound, values in rates.items():
        print(f"chunk_bytes {bound}: {statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} tok/s  "
              f"{[round(v, 1) for v in values]}")
    first, last = bounds[0], bounds[-1]
    ratios = [b / a for a, b in zip(rates[first], rates[last], strict=True)]
    print(f"paired ratio {last}/{first}: {statistics.mean(ratios):.3f} ± {statistics.stdev(ratios):.3f}")


if __name__ == "__main__":
    main()
