"""In-process A/B of two int4 checkpoints of the embedded model, variants alternating per round:
the r25s8 recipe (8-bit codes as plane pairs, joined on AVX-512 VNNI) against the r25 recipe (GPTQ
int4 plus an int4 residual plane), whose checkpoint must still be in the cache (built by an earlier
version). Prefill of a 512-token prompt in 128-token chunks, then 128 fused decode steps.

    THREADS=2 ROUNDS=10 python scripts/experiments/recipe_ab.py
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

from codegeex_lsp.bench.decode import prefill_prompt_ids
from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine import fused_decode, load
from codegeex_lsp.engine.decode import PREFILL_CHUNK_TOKENS, prefill


def main() -> int:
    threads = int(os.environ.get("THREADS", "2"))
    rounds = int(os.environ.get("ROUNDS", "10"))
    torch.set_num_threads(threads)
    opts = EngineOptions(model="qwen2.5-coder-0.5b", quant="int4", threads=threads, max_context_tokens=4096)
    new = load.load_model(opts)
    current = load.int4_checkpoint_path

    def old_path(*args, **kwargs) -> Path:
        path = Path(str(current(*args, **kwargs)).replace("-r25s8-", "-r25-"))
        if not path.is_file():  # never build the current recipe under the old name
            raise SystemExit(f"no r25 checkpoint at {path}: nothing to compare against")
        return path

    load.int4_checkpoint_path = old_path
    try:
        old = load.load_model(opts)
    finally:
        load.int4_checkpoint_path = current
    models = {"s8": new.model, "r25": old.model}
    plans = {name: fused_decode.plan_for(model) for name, model in models.items()}
    ids = prefill_prompt_ids(new.tokenizer, 512)

    def run_prefill(name: str) -> float:
        model = models[name]
        cache, pos = model.new_cache(1, 1024), 0
        started = time.perf_counter()
        while pos < len(ids):
            chunk = ids[pos : pos + PREFILL_CHUNK_TOKENS]
            prefill(model, cache, torch.tensor([chunk]), pos)
            pos += len(chunk)
        return len(ids) / (time.perf_counter() - started)

    def run_decode(name: str) -> float:
        model, plan = models[name], plans[name]
        cache = model.new_cache(1, 1024)
        x = model.tok_embeddings(torch.tensor([[123]]))
        started = time.perf_counter()
        for pos in range(128):
            plan.step(x, pos, cache.k, cache.v)
        return 128 / (time.perf_counter() - started)

    names = list(models)
    with torch.inference_mode():
        for name in names:  # warm-up
            run_prefill(name)
            run_decode(name)
        for label, run in (("prefill", run_prefill), ("decode", run_decode)):
            rates: dict[str, list[float]] = {name: [] for name in names}
            for r in range(rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    rates[name].append(run(name))
            ratios = [a / b for a, b in zip(rates["s8"], rates["r25"], strict=True)]
            print(
                f"{label}: s8 median {statistics.median(rates['s8']):.1f}, r25 median "
                f"{statistics.median(rates['r25']):.1f} tok/s; geometric mean ratio "
                f"{statistics.geometric_mean(ratios):.3f}, s8 faster in {sum(x > 1 for x in ratios)}/{rounds} rounds",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
