"""One side of a decode/prefill A/B: the default int4 model's fused step and chunked prefill, timed.

Run it alternately for the two sides, in separate processes (one build each: PYTHONPATH=<worktree>,
or one build with `--no-arena`), e.g.

    for i in 1 2 3; do python scripts/experiments/step_ab.py --no-arena; python scripts/experiments/step_ab.py; done

Prints the median decode rate of `--rounds` rounds of `plan.step` x 128 (after one warm-up round) and
the rates of a 512-token prefill in the engine's chunks. Session 17 (`docs/results/decode/README.md`)
measured its kernel and weight-arena changes this way.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from codegeex_lsp.bench.decode import prefill_prompt_ids
from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine import fused_decode
from codegeex_lsp.engine.decode import PREFILL_CHUNK_TOKENS, prefill
from codegeex_lsp.engine.load import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-arena", action="store_true", help="leave the weights where they were loaded")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.no_arena:
        fused_decode.place_step_weights = lambda linears: None
    torch.set_num_threads(args.threads)
    opts = EngineOptions(
        model="qwen2.5-coder-0.5b", quant="int4", threads=args.threads, max_context_tokens=4096
    )
    loaded = load_model(opts)
    model = loaded.model
    plan = fused_decode.plan_for(model)
    ids = prefill_prompt_ids(loaded.tokenizer, 512)
    x = model.tok_embeddings(torch.tensor([[123]]))
    decode, prefills = [], []
    with torch.inference_mode():
        for _ in range(args.rounds + 1):
            cache = model.new_cache(1, 1024)
            start = time.perf_counter()
            for pos in range(128):
                plan.step(x, pos, cache.k, cache.v)
            decode.append(128 / (time.perf_counter() - start))
            cache, pos = model.new_cache(1, 1024), 0
            start = time.perf_counter()
            while pos < len(ids):
                chunk = ids[pos : pos + PREFILL_CHUNK_TOKENS]
                prefill(model, cache, torch.tensor([chunk]), pos)
                pos += len(chunk)
            prefills.append(len(ids) / (time.perf_counter() - start))
    side = "no arena" if args.no_arena else "default"
    print(
        f"{side}: decode median {statistics.median(decode[1:]):.1f} tok/s "
        f"({' '.join(f'{v:.1f}' for v in decode[1:])}); prefill {' '.join(f'{v:.1f}' for v in prefills[1:])}"
    )


if __name__ == "__main__":
    main()
