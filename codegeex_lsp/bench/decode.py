"""`codegeex-lsp bench decode`: our decode loop vs transformers `generate()` in one run.

Same model weights (the converted cache dir), same prompt, same thread count, greedy, a fixed
number of new tokens (eos ignored), all measured in this process one after the other so the
ratios compare like with like. tok/s is new tokens over the whole call (prefill included), the
way `generate()` is usually timed; our decode-only rate is reported beside it.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import asdict, dataclass

DEFAULT_PROMPT = (
    "<|fim_prefix|>import json\nfrom pathlib import Path\n\n\ndef load_config(path: str) -> dict:\n"
    '    """Read a JSON config file and fill in defaults."""\n    '
    "<|fim_suffix|>\n\n\ndef main() -> None:\n    config = load_config('config.json')\n"
    "    print(config)\n<|fim_middle|>"
)


@dataclass
class DecodeBench:
    model: str
    threads: int
    new_tokens: int
    prompt_tokens: int
    ours_tok_s: float
    ours_decode_tok_s: float
    ours_fp32_tok_s: float
    hf_bf16_tok_s: float
    hf_fp32_tok_s: float
    ratio_vs_hf_bf16: float
    ratio_vs_hf_fp32: float
    ours_int4_tok_s: float | None = None
    llama_cpp_tok_s: float | None = None
    int4_ratio_vs_hf_bf16: float | None = None
    int4_ratio_vs_llama_cpp: float | None = None


def _best(fn, repeat: int) -> float:
    """Fastest of `repeat` runs (seconds) after one warm-up: the least-disturbed measurement."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run(
    model: str, threads: int, new_tokens: int, repeat: int, cache_dir: str | None, log, int4: bool = True
) -> DecodeBench:
    import torch
    from transformers import AutoModelForCausalLM

    from codegeex_lsp.config import EngineOptions
    from codegeex_lsp.engine.decode import SamplingParams, generate
    from codegeex_lsp.engine.load import load_model

    torch.set_num_threads(threads)
    params = SamplingParams(max_new_tokens=new_tokens)
    results: dict[str, float] = {}
    decode_only = 0.0
    hf_dir = None
    prompt_ids: list[int] = []
    for dtype in ("bfloat16", "float32"):
        loaded = load_model(EngineOptions(model=model, dtype=dtype, threads=threads, cache_dir=cache_dir))
        hf_dir = loaded.hf_dir
        prompt_ids = loaded.tokenizer.encode(DEFAULT_PROMPT, add_special_tokens=False)
        last = {}

        def ours(loaded=loaded, last=last, ids=prompt_ids):
            last["r"] = generate(loaded.model, loaded.tokenizer, ids, params)

        seconds = _best(ours, repeat)
        assert len(last["r"].candidates[0].token_ids) == new_tokens
        results[f"ours_{dtype}"] = new_tokens / seconds
        if dtype == "bfloat16":
            decode_only = last["r"].decode_tok_s
        log(f"ours {dtype}: {results[f'ours_{dtype}']:.1f} tok/s")
        del loaded
        gc.collect()

    if int4:
        loaded = load_model(
            EngineOptions(model=model, quant="int4", threads=threads, cache_dir=cache_dir),
            progress=log,
        )
        results["ours_int4"] = new_tokens / _best(
            lambda: generate(loaded.model, loaded.tokenizer, prompt_ids, params), repeat
        )
        log(f"ours int4: {results['ours_int4']:.1f} tok/s")
        gguf_path = loaded.hf_dir.parent.parent / "models" / f"{loaded.name}.gguf"
        del loaded
        gc.collect()
        llama = _llama_cpp_tok_s(gguf_path, prompt_ids, new_tokens, threads, repeat, log)
        if llama is not None:
            results["llama_cpp"] = llama

    for dtype in (torch.bfloat16, torch.float32):
        hf = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=dtype).eval()
        ids = torch.tensor([prompt_ids])

        def theirs(hf=hf, ids=ids):
            with torch.inference_mode():
                out = hf.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
            assert out.shape[1] - ids.shape[1] == new_tokens

        name = "hf_bf16" if dtype == torch.bfloat16 else "hf_fp32"
        results[name] = new_tokens / _best(theirs, repeat)
        log(f"transformers generate() {name}: {results[name]:.1f} tok/s")
        del hf
        gc.collect()

    return DecodeBench(
        model=model,
        threads=threads,
        new_tokens=new_tokens,
        prompt_tokens=len(prompt_ids),
        ours_tok_s=results["ours_bfloat16"],
        ours_decode_tok_s=decode_only,
        ours_fp32_tok_s=results["ours_float32"],
        hf_bf16_tok_s=results["hf_bf16"],
        hf_fp32_tok_s=results["hf_fp32"],
        ratio_vs_hf_bf16=results["ours_bfloat16"] / results["hf_bf16"],
        ratio_vs_hf_fp32=results["ours_float32"] / results["hf_fp32"],
        ours_int4_tok_s=results.get("ours_int4"),
        llama_cpp_tok_s=results.get("llama_cpp"),
        int4_ratio_vs_hf_bf16=results["ours_int4"] / results["hf_bf16"] if "ours_int4" in results else None,
        int4_ratio_vs_llama_cpp=(
            results["ours_int4"] / results["llama_cpp"]
            if "llama_cpp" in results and "ours_int4" in results
            else None
        ),
    )


def _llama_cpp_tok_s(gguf_path, prompt_ids, new_tokens, threads, repeat, log) -> float | None:
    """llama.cpp (llama-cpp-python) on the same GGUF and prompt ids: the speed anchor."""
    try:
        from llama_cpp import Llama
    except ImportError:
        log("llama-cpp-python not installed: no llama.cpp anchor")
        return None
    if not gguf_path.is_file():
        log(f"{gguf_path} not found: no llama.cpp anchor")
        return None
    llm = Llama(model_path=str(gguf_path), n_threads=threads, n_ctx=1024, verbose=False)

    def once() -> None:
        llm.reset()
        count = 0
        for _token in llm.generate(prompt_ids, top_k=1, temp=0.0, reset=True):
            count += 1
            if count == new_tokens:
                break
        assert count == new_tokens

    tok_s = new_tokens / _best(once, repeat)
    log(f"llama.cpp: {tok_s:.1f} tok/s")
    return tok_s


def format_table(b: DecodeBench) -> str:
    rows = [
        ("ours (bf16)", b.ours_tok_s, b.ours_tok_s / b.hf_bf16_tok_s),
        ("ours (fp32)", b.ours_fp32_tok_s, b.ours_fp32_tok_s / b.hf_bf16_tok_s),
        ("transformers generate() bf16", b.hf_bf16_tok_s, 1.0),
        ("transformers generate() fp32", b.hf_fp32_tok_s, b.hf_fp32_tok_s / b.hf_bf16_tok_s),
    ]
    if b.ours_int4_tok_s is not None:
        rows.insert(0, ("ours (int4, AVX2 kernels)", b.ours_int4_tok_s, b.ours_int4_tok_s / b.hf_bf16_tok_s))
    if b.llama_cpp_tok_s is not None:
        rows.append(("llama.cpp (same GGUF)", b.llama_cpp_tok_s, b.llama_cpp_tok_s / b.hf_bf16_tok_s))
    lines = [
        f"model {b.model}, {b.prompt_tokens}-token prompt, {b.new_tokens} greedy tokens, {b.threads} threads",
        "| engine | tok/s | vs HF bf16 |",
        "|---|---:|---:|",
        *[f"| {name} | {tps:.1f} | {ratio:.2f}x |" for name, tps, ratio in rows],
        f"ours bf16 decode-only: {b.ours_decode_tok_s:.1f} tok/s; ours fp32 vs HF fp32: {b.ratio_vs_hf_fp32:.2f}x",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codegeex-lsp bench decode", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per engine (best is kept)")
    parser.add_argument("--cache-dir")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-int4", action="store_true", help="skip our int4 run and the llama.cpp anchor")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    bench = run(
        args.model, args.threads, args.tokens, args.repeat, args.cache_dir, log, int4=not args.no_int4
    )
    if args.json:
        print(json.dumps(asdict(bench)))
    else:
        print(format_table(bench))
    return 0
