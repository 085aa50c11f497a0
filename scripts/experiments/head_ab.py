"""A/B of decode speed: a plain-head int4 checkpoint against the screened-head one, one per process.

Run alternately in separate processes (the VM drifts by a third over minutes): the same prompt,
fused decode of 128 tokens, the median of the runs after a warm-up; prints MB read per token and
the text, which should match between the two.

    for v in new old new old; do python scripts/experiments/head_ab.py $v --old <plain-head .safetensors>; done
"""

from __future__ import annotations

import argparse
import statistics

import torch

from codegeex_lsp.bench.decode import SHORT_PROMPT, _weight_bytes_per_token
from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.engine.model import Transformer
from codegeex_lsp.prompt.types import Prompt
from codegeex_lsp.quant import load_quantized_into


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=("new", "old"))
    parser.add_argument("--old", required=True, help="the plain-head checkpoint (an earlier recipe's file)")
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    loaded = load_model(EngineOptions(quant="int4", threads=2, int4_build="first"), progress=lambda _m: None)
    model = loaded.model
    if args.which == "old":
        with torch.device("meta"):
            model = Transformer(loaded.model.args, max_seq_len=loaded.model.max_seq_len)
        load_quantized_into(model, args.old, verify=False)
        model.eval()
    ids = loaded.tokenizer.encode(SHORT_PROMPT, add_special_tokens=False)
    prompt = Prompt("raw", SHORT_PROMPT, tuple(ids), ())
    rates, text = [], ""
    for i in range(args.runs):
        done = generate(model, loaded.tokenizer, prompt, CompletionOptions(max_tokens=128))
        text = done.raw[0]
        if i:
            rates.append(done.timings["decode_tok_s"])
    mb = _weight_bytes_per_token(model) / 1e6
    print(f"{args.which} MB/token {mb:.0f} median {statistics.median(rates):.2f}", " ".join(f"{r:.1f}" for r in rates))
    print(repr(text[:100]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
