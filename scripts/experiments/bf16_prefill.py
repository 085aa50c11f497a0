"""How fast would prefill be with each int4 linear folded into one bf16 matrix (residual plane added)?

A measurement for the AVX-512 prefill gap (`docs/results/decode/README.md`, session 18), not a
feature: alternating rounds time a 512-token prefill in the engine's chunks with the int4 kernels
(what users run) and with every QuantLinear's forward replaced, for inputs of more than one row, by
`F.linear` on bf16 copies of `dequantize()` (oneDNN's GEMM). It also compares the last position's
logits of the two prefills (top-1 agreement and the largest difference), which says how far the
folded path's numerics move from the int4 kernels'. Run it on a quiet host:

    python scripts/experiments/bf16_prefill.py --rounds 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from codegeex_lsp.bench.decode import prefill_prompt_ids
from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine.decode import PREFILL_CHUNK_TOKENS, prefill
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.quant.linear import QuantLinear


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    opts = EngineOptions(
        model="qwen2.5-coder-0.5b", quant="int4", threads=args.threads, max_context_tokens=4096
    )
    loaded = load_model(opts)
    model = loaded.model
    ids = prefill_prompt_ids(loaded.tokenizer, 512)
    linears = [m for m in model.modules() if isinstance(m, QuantLinear)]
    start = time.perf_counter()
    folded = {id(m): m.dequantize().to(torch.bfloat16) for m in linears}
    print(
        f"{len(linears)} linears folded to bf16 in {time.perf_counter() - start:.1f} s, "
        f"{sum(w.numel() for w in folded.values()) * 2 / 1e6:.0f} MB"
    )
    int4_forward = QuantLinear.forward

    def bf16_forward(self: QuantLinear, x: torch.Tensor) -> torch.Tensor:
        if x.numel() // x.shape[-1] <= 1:
            return int4_forward(self, x)
        bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        return F.linear(x.to(torch.bfloat16), folded[id(self)], bias).to(x.dtype)

    def run() -> torch.Tensor:
        cache, pos, logits = model.new_cache(1, 1024), 0, None
        while pos < len(ids):
            chunk = ids[pos : pos + PREFILL_CHUNK_TOKENS]
            logits = prefill(model, cache, torch.tensor([chunk]), pos)
            pos += len(chunk)
        return logits

    rates: dict[str, list[float]] = {"int4 kernels": [], "bf16 folded": []}
    last: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for r in range(args.rounds + 1):
            for side, fwd in (("int4 kernels", int4_forward), ("bf16 folded", bf16_forward)):
                QuantLinear.forward = fwd
                t = time.perf_counter()
                last[side] = run().float().reshape(-1)
                if r:
                    rates[side].append(len(ids) / (time.perf_counter() - t))
    QuantLinear.forward = int4_forward
    for side, v in rates.items():
        print(f"{side}: prefill median {statistics.median(v):.1f} tok/s ({' '.join(f'{x:.1f}' for x in v)})")
    a, b = last["int4 kernels"], last["bf16 folded"]
    print(
        f"last-position logits: same top-1 {bool(a.argmax() == b.argmax())}, max |diff| {(a - b).abs().max():.3f}"
    )


if __name__ == "__main__":
    main()
