"""`codegeex-lsp bench decode`: ours (int4, the default) against llama.cpp on its own ground, one run.

One process, one host, the same thread count, one after the other:
- ours int4 (what users run) and, unless `--no-bf16`, ours bf16 (`--quant none`) for comparison;
- llama.cpp's own `llama-bench` on the shipped GGUF (Q5_0 mix) and on its Q4_0 requantization
  (`llama-quantize`, made once into the cache): `-p 512` prefill and `-n 128` decode, the figures
  llama.cpp itself reports.
Ours is timed the same way: prefill of a 512-token prompt (a fresh cache each run), and the decode
rate of 128 greedy tokens after a short prompt (first token excluded, like llama-bench's tg); the
mean of `--repeat` runs after a warm-up run, as llama-bench averages its own `-r` repetitions (both
with their standard deviation). Ours int4 is timed twice on one loaded model, run by run in turn:
the default fused decode step and the op-by-op forward (`ours int4, op by op`), so the JSON's
`fused_decode_speedup` is a same-run ratio.

Every engine runs `--rounds` times in turn (default 3): this VM's speed drifts by a fifth over
minutes, so engines timed minutes apart are not comparable; each round's ratios are, and the report
gives their geometric mean with a 95 % t interval, and each engine's mean over the rounds.

`--depth N` puts N tokens of cached context before both (llama-bench `-d N`): an editor's prompt
runs 1-2k tokens (prefix, suffix, references), and every decoded token attends over all of them, so
the rates at depth are the ones a user waits on. Ours fills its cache with the prompt text once
(untimed); prefill then times the 512 tokens after the first N, and decode starts after the first N.

`--isa avx2` measures what an AVX2-only host runs, on a host that also has AVX-512: our AVX2 kernel
path and the portable AVX2 build of llama.cpp (`CODEGEEX_LSP_LLAMA_ISA=avx2 scripts/install-llama-cpp`),
with PyTorch's own kernels and oneDNN held to AVX2 by their environment variables (checked, since they
only take effect before torch loads). The memory system is still this host's, so it answers which
code is faster with AVX2 instructions, not what an AVX2 machine's bandwidth allows.

GB/s is weight bytes read per decoded token times tok/s (embedding rows excluded; the KV cache is
small at these lengths and left out, so it slightly understates both). The host's read bandwidth is
measured in the same run (a multi-threaded sum over 1 GiB) to give the fraction of the memory bound.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codegeex_lsp.bench import llama_cpp
from codegeex_lsp.bench.latency.corpus import packaged_files
from codegeex_lsp.bench.stats import ratio_interval

SHORT_PROMPT = (
    "<|fim_prefix|>import json\nfrom pathlib import Path\n\n\ndef load_config(path: str) -> dict:\n"
    '    """Read a JSON config file and fill in defaults."""\n    '
    "<|fim_suffix|>\n\n\ndef main() -> None:\n    config = load_config('config.json')\n"
    "    print(config)\n<|fim_middle|>"
)
# Fixed source text for the prefill prompt: the third-party files the latency bench replays (shipped
# with their licenses; not benchmark tasks).
PREFILL_SOURCES = Path(__file__).parent / "data" / "latency"


OP_BY_OP_ROW = "ours int4, op by op"


@dataclass
class EngineRow:
    name: str
    decode_tok_s: float | None
    prefill_tok_s: float | None
    weight_bytes_per_token: int | None = None
    note: str = ""
    decode_sd: float | None = None  # standard deviation over the timed runs
    prefill_sd: float | None = None

    @property
    def decode_gb_s(self) -> float | None:
        if self.decode_tok_s is None or self.weight_bytes_per_token is None:
            return None
        return self.decode_tok_s * self.weight_bytes_per_token / 1e9


@dataclass
class DecodeBench:
    model: str
    threads: int
    prefill_tokens: int
    new_tokens: int
    cpu_flags: str
    kernel_path: str | None
    quant: str | None
    host_read_gb_s: float
    isa: str = "native"
    depth: int = 0  # cached context tokens before the timed prefill and decode (llama-bench -d)
    rows: list[EngineRow] = field(default_factory=list)  # each engine's mean over the rounds
    llama_cpp_missing: str | None = None
    rounds: list[list[EngineRow]] = field(default_factory=list)  # every engine, round by round

    def row(self, name: str) -> EngineRow | None:
        return find_row(self.rows, name)

    def summary(self) -> dict:
        """The flat keys scripts read (`--json`). The ratios are geometric means of the per-round
        ratios, with a 95 % t interval (`<key>_ci95`) over two or more rounds."""
        out = rates(self.rows)
        per_round = [ratios(rates(rows)) for rows in self.rounds] or [ratios(out)]
        for key in RATIO_KEYS:
            values = [r[key] for r in per_round if r[key] is not None]
            if len(values) < len(per_round) or not values:  # an engine missing from a round
                out[key], out[f"{key}_ci95"] = ratios(out)[key], None
                continue
            mean, low, high = ratio_interval(values)
            out[key] = mean
            out[f"{key}_ci95"] = [low, high] if low is not None else None
        base = {k: v for k, v in asdict(self).items() if k not in ("rows", "rounds")}
        base["rows"] = [{**asdict(r), "decode_gb_s": r.decode_gb_s} for r in self.rows]
        base["rounds"] = [[asdict(r) for r in rows] for rows in self.rounds]
        return {**base, **out}


RATIO_KEYS = ("decode_ratio_vs_llama_cpp_q4_0", "prefill_ratio_vs_llama_cpp", "fused_decode_speedup")


def find_row(rows: list[EngineRow], name: str) -> EngineRow | None:
    return next((r for r in rows if r.name == name), None)


def rates(rows: list[EngineRow]) -> dict[str, float | None]:
    """The per-engine keys of `--json` from one set of rows."""

    def get(name: str, attr: str) -> float | None:
        row = find_row(rows, name)
        return getattr(row, attr) if row else None

    return {
        "ours_int4_tok_s": get("ours int4", "decode_tok_s"),
        "ours_int4_prefill_tok_s": get("ours int4", "prefill_tok_s"),
        "ours_int4_op_by_op_tok_s": get(OP_BY_OP_ROW, "decode_tok_s"),
        "ours_bf16_tok_s": get("ours bf16", "decode_tok_s"),
        "ours_bf16_prefill_tok_s": get("ours bf16", "prefill_tok_s"),
        "llama_cpp_tok_s": get("llama.cpp GGUF", "decode_tok_s"),
        "llama_cpp_prefill_tok_s": get("llama.cpp GGUF", "prefill_tok_s"),
        "llama_cpp_q4_0_tok_s": get("llama.cpp Q4_0", "decode_tok_s"),
        "llama_cpp_q4_0_prefill_tok_s": get("llama.cpp Q4_0", "prefill_tok_s"),
    }


def ratios(out: dict[str, float | None]) -> dict[str, float | None]:
    """The target ratios from `rates`: decode vs llama.cpp Q4_0, prefill vs the better llama.cpp row,
    fused vs op-by-op decode."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    best_prefill = max(
        (v for v in (out["llama_cpp_prefill_tok_s"], out["llama_cpp_q4_0_prefill_tok_s"]) if v), default=None
    )
    return {
        "decode_ratio_vs_llama_cpp_q4_0": ratio(out["ours_int4_tok_s"], out["llama_cpp_q4_0_tok_s"]),
        "prefill_ratio_vs_llama_cpp": ratio(out["ours_int4_prefill_tok_s"], best_prefill),
        "fused_decode_speedup": ratio(out["ours_int4_tok_s"], out["ours_int4_op_by_op_tok_s"]),
    }


def combine_rounds(rounds: list[list[EngineRow]]) -> list[EngineRow]:
    """Each engine's row over the rounds: the mean of its round means, and their standard deviation
    (within one round: its timed runs' own)."""
    if len(rounds) == 1:
        return list(rounds[0])

    def mean_sd(rows: list[EngineRow], attr: str) -> tuple[float | None, float | None]:
        values = [getattr(r, attr) for r in rows if getattr(r, attr) is not None]
        if not values:
            return None, None
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None

    combined = []
    for first in rounds[0]:
        rows = [r for round_rows in rounds for r in round_rows if r.name == first.name]
        decode, decode_sd = mean_sd(rows, "decode_tok_s")
        prefill, prefill_sd = mean_sd(rows, "prefill_tok_s")
        notes = "; ".join(dict.fromkeys(r.note for r in rows if r.note))
        combined.append(
            EngineRow(first.name, decode, prefill, first.weight_bytes_per_token, notes, decode_sd, prefill_sd)
        )
    return combined


def host_read_gb_s(threads: int, gib: float = 1.0, repeat: int = 5) -> float:
    """Read bandwidth of this host with `threads` threads: best of `repeat` sums over `gib` GiB."""
    import torch

    torch.set_num_threads(threads)
    x = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - started)
    nbytes = x.numel() * 4
    del x
    gc.collect()
    return nbytes / best / 1e9


def prefill_prompt_ids(tokenizer, n_tokens: int) -> list[int]:
    """`n_tokens` ids of fixed source text (repeated if short): the same prompt on every host."""
    files = packaged_files(PREFILL_SOURCES)
    ids = tokenizer.encode("\n".join(p.read_text() for p in files), add_special_tokens=False)
    if not ids:
        raise RuntimeError(f"no prefill source text in {PREFILL_SOURCES}")
    return (ids * (n_tokens // len(ids) + 1))[:n_tokens]


def _weight_bytes_per_token(model) -> int:
    """Bytes of every weight a decode step reads: all tensors but the embedding table (one row).

    Tensors are found as parameters, buffers and plain attributes (oneDNN-packed bf16 weights are
    attributes in an opaque layout: numel x element size); a tensor's own bytes count once per
    address, so a tied output matrix counts as the output, and views into one buffer (the decode
    step's weight arena) count as themselves, not as the buffer. A screened head reads its projection
    and its candidates' exact rows, not its whole exact table (its screen is counted as a linear)."""
    import torch

    from codegeex_lsp.quant.screened_head import ScreenedHead

    seen: set[int] = set()
    total = 0
    for name, module in model.named_modules():
        if name.startswith("tok_embeddings"):
            continue
        if isinstance(module, ScreenedHead):  # its screen follows as a module of its own
            total += module.rescore_bytes()
            continue
        tensors = [*module._parameters.values(), *module._buffers.values()]
        tensors += [v for v in vars(module).values() if isinstance(v, torch.Tensor)]
        for tensor in tensors:
            if tensor is None:
                continue
            if tensor.is_mkldnn:
                total += tensor.numel() * tensor.element_size()
                continue
            ptr = tensor.data_ptr()
            if ptr not in seen:
                seen.add(ptr)
                total += tensor.numel() * tensor.element_size()
    return total


def measure_ours(
    model: str, quant: str, threads: int, n_prefill: int, n_decode: int, repeat: int, cache, log, depth: int = 0
) -> tuple[list[EngineRow], str]:
    """(rows, loaded model's quant label) for one of our configurations. int4 gets two rows: the
    default (one fused C++ call per decoded token) and the op-by-op forward it replaced
    (CODEGEEX_LSP_FUSED_DECODE=0), timed on the same loaded model, round by round in turn. `depth`:
    tokens of cached context before both (see the module's docstring)."""
    import os

    from codegeex_lsp.config import CompletionOptions, EngineOptions
    from codegeex_lsp.engine import fused_decode
    from codegeex_lsp.engine.decode import generate
    from codegeex_lsp.engine.load import load_model
    from codegeex_lsp.prompt.types import Prompt

    context_len = depth + max(n_prefill, n_decode) + 64  # positions a timed call may reach
    loaded = load_model(
        EngineOptions(
            model=model,
            quant=quant,
            dtype="bfloat16" if quant == "none" else "auto",
            threads=threads,
            cache_dir=cache,
            max_context_tokens=max(4096, context_len),
        ),
        progress=log,
    )
    ids = tuple(prefill_prompt_ids(loaded.tokenizer, depth + n_prefill))
    long_prompt = Prompt("raw", "", ids, ())
    if depth:
        decode_prompt = Prompt("raw", "", ids[:depth], ())
        context = loaded.model.new_cache(1, context_len)
        generate(loaded.model, loaded.tokenizer, decode_prompt, CompletionOptions(max_tokens=1), cache=context)
    else:
        short_ids = loaded.tokenizer.encode(SHORT_PROMPT, add_special_tokens=False)
        decode_prompt = Prompt("raw", SHORT_PROMPT, tuple(short_ids), ())
        context = None
    at_depth = {"cache": context, "n_cached": depth} if depth else {}
    name = "ours int4" if quant == "int4" else "ours bf16"
    variants = {name: "1"}
    if quant == "int4":
        variants[OP_BY_OP_ROW] = "0"
    prefill: dict[str, list[float]] = {v: [] for v in variants}
    decode: dict[str, list[float]] = {v: [] for v in variants}
    steps: dict[str, int] = {}
    saved = os.environ.get(fused_decode.FUSED_ENV)
    try:
        for round_ in range(repeat + 1):  # round 0 warms up and is not counted
            for variant, flag in variants.items():
                os.environ[fused_decode.FUSED_ENV] = flag
                p = generate(loaded.model, loaded.tokenizer, long_prompt, CompletionOptions(max_tokens=1), **at_depth)
                d = generate(
                    loaded.model, loaded.tokenizer, decode_prompt, CompletionOptions(max_tokens=n_decode), **at_depth
                )
                steps[variant] = d.generated_tokens
                if round_:
                    if p.prefill_tokens != n_prefill:  # a cache that did not hold the context
                        raise RuntimeError(f"{variant}: prefilled {p.prefill_tokens} tokens, not {n_prefill}")
                    prefill[variant].append(n_prefill / p.timings["prefill_s"])
                    decode[variant].append(d.timings["decode_tok_s"])
    finally:
        if saved is None:
            os.environ.pop(fused_decode.FUSED_ENV, None)
        else:
            os.environ[fused_decode.FUSED_ENV] = saved
    rows = []
    weight_bytes = _weight_bytes_per_token(loaded.model)
    for variant in variants:
        note = "" if steps[variant] == n_decode else f"decode stopped after {steps[variant]} tokens"
        row = EngineRow(
            variant,
            statistics.mean(decode[variant]),
            statistics.mean(prefill[variant]),
            weight_bytes,
            note,
            decode_sd=statistics.stdev(decode[variant]) if repeat > 1 else None,
            prefill_sd=statistics.stdev(prefill[variant]) if repeat > 1 else None,
        )
        log(f"{variant}: prefill {row.prefill_tok_s:.1f} tok/s, decode {row.decode_tok_s:.1f} tok/s")
        rows.append(row)
    label = loaded.quant
    del loaded
    gc.collect()
    return rows, label


def gguf_weight_bytes(path: Path) -> int:
    """Bytes of a GGUF's tensors that one decode step reads (token_embd excluded unless it is the output)."""
    from gguf import GGUFReader

    tensors = {t.name: int(t.n_bytes) for t in GGUFReader(str(path)).tensors}
    if "output.weight" in tensors:
        tensors.pop("token_embd.weight", None)
    return sum(tensors.values())


def measure_llama_cpp(
    gguf: Path, name: str, threads: int, n_prefill: int, n_decode: int, repeat: int, cache, log, depth: int = 0,
    isa="native",
):
    """llama-bench's own pp/tg figures for one GGUF (after `depth` tokens of context: its -d)."""
    proc = subprocess.run(
        [
            str(llama_cpp.binary("llama-bench", cache, isa)),
            "-m",
            str(gguf),
            "-t",
            str(threads),
            "-p",
            str(n_prefill),
            "-n",
            str(n_decode),
            "-d",
            str(depth),
            "-r",
            str(max(repeat, 1)),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        env=llama_cpp.run_env(cache, isa),
        timeout=3600,
    )
    if proc.returncode != 0:
        raise llama_cpp.LlamaCppMissing(f"llama-bench failed on {gguf.name}: {proc.stderr.strip()[-400:]}")
    entries = json.loads(proc.stdout)
    pp = next(e for e in entries if e["n_prompt"] == n_prefill and e["n_gen"] == 0)
    tg = next(e for e in entries if e["n_gen"] == n_decode and e["n_prompt"] == 0)
    row = EngineRow(
        name, tg["avg_ts"], pp["avg_ts"], gguf_weight_bytes(gguf), entries[0].get("cpu_info", ""),
        decode_sd=tg.get("stddev_ts"), prefill_sd=pp.get("stddev_ts"),
    )  # fmt: skip
    log(f"{name}: prefill {row.prefill_tok_s:.1f} tok/s, decode {row.decode_tok_s:.1f} tok/s")
    return row


# What --isa avx2 needs of the environment: PyTorch's kernels and oneDNN read these before torch loads.
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def hold_to_isa(isa: str) -> None:
    """Make every engine of the run use `isa`'s instructions; InputError where that cannot hold."""
    import os

    import torch

    from codegeex_lsp.errors import InputError
    from codegeex_lsp.quant import ops

    if isa == "native":
        return
    wrong = {k: v for k, v in AVX2_ENV.items() if os.environ.get(k) != v}
    capability = torch.backends.cpu.get_cpu_capability()
    if wrong or capability not in ("AVX2", "DEFAULT"):
        env = " ".join(f"{k}={v}" for k, v in AVX2_ENV.items())
        raise InputError(
            f"--isa {isa} needs PyTorch's kernels held to AVX2 before torch loads (capability now "
            f"{capability}): run `{env} codegeex-lsp bench decode --isa {isa} ...`"
        )
    try:
        ops.set_cpu_path(isa)
    except ValueError as exc:
        raise InputError(f"--isa {isa}: {exc}") from None


def run(args, log) -> DecodeBench:
    from codegeex_lsp.bench.stats import host_info
    from codegeex_lsp.config import cache_dir
    from codegeex_lsp.quant import ops

    isa = args.isa
    hold_to_isa(isa)
    bandwidth = host_read_gb_s(args.threads)
    log(f"host read bandwidth ({args.threads} threads): {bandwidth:.1f} GB/s")
    host = host_info()
    bench = DecodeBench(
        model=args.model,
        threads=args.threads,
        prefill_tokens=args.prefill_tokens,
        new_tokens=args.tokens,
        cpu_flags=" ".join(host["simd_flags"]),
        kernel_path=ops.kernel_label(),
        quant=None,
        host_read_gb_s=bandwidth,
        isa=isa,
        depth=args.depth,
    )
    same = (args.threads, args.prefill_tokens, args.tokens, args.repeat, args.cache_dir, log, args.depth)
    for round_ in range(args.rounds):
        if args.rounds > 1:
            log(f"round {round_ + 1} of {args.rounds}")
        rows: list[EngineRow] = []
        for quant in ("int4",) if args.no_bf16 else ("int4", "none"):
            ours, label = measure_ours(args.model, quant, *same)
            rows.extend(ours)
            bench.quant = bench.quant or label
        if not args.no_llama_cpp and bench.llama_cpp_missing is None:
            gguf = cache_dir(args.cache_dir) / "models" / f"{args.model}.gguf"
            try:
                if not gguf.is_file():
                    raise llama_cpp.LlamaCppMissing(f"{gguf} not found (run `codegeex-lsp model install`)")
                rows.append(measure_llama_cpp(gguf, "llama.cpp GGUF", *same, isa=isa))
                q4 = llama_cpp.quantized(gguf, "Q4_0", args.cache_dir, args.threads)
                rows.append(measure_llama_cpp(q4, "llama.cpp Q4_0", *same, isa=isa))
            except llama_cpp.LlamaCppMissing as exc:
                bench.llama_cpp_missing = str(exc)
                log(f"llama.cpp: {exc}")
        bench.rounds.append(rows)
    bench.rows = combine_rounds(bench.rounds)
    return bench


def format_table(b: DecodeBench) -> str:
    s = b.summary()
    lines = [
        f"model {b.model} ({b.quant}), {b.threads} threads, prefill {b.prefill_tokens} tokens, "
        f"decode {b.new_tokens} tokens"
        + (f", both after {b.depth} cached tokens" if b.depth else "")
        + f"; kernel path {b.kernel_path}"
        + (f"; every engine held to {b.isa} instructions" if b.isa != "native" else ""),
        f"host read bandwidth {b.host_read_gb_s:.1f} GB/s; CPU flags: {b.cpu_flags}",
        "| engine | prefill tok/s | decode tok/s | decode GB/s | of read bound |",
        "|---|---:|---:|---:|---:|",
    ]
    def rate(value: float | None, sd: float | None) -> str:
        if value is None:
            return ""
        return f"{value:.1f}" if sd is None else f"{value:.1f} ± {sd:.1f}"

    for r in b.rows:
        gb = r.decode_gb_s
        bound = f"{gb:.1f} | {gb / b.host_read_gb_s:.0%}" if gb else " | "
        lines.append(
            f"| {r.name} | {rate(r.prefill_tok_s, r.prefill_sd)} | {rate(r.decode_tok_s, r.decode_sd)} | {bound} |"
        )
    if b.llama_cpp_missing:
        lines.append(f"llama.cpp missing: {b.llama_cpp_missing}")
    for key in RATIO_KEYS:
        if s[key] is not None:
            ci = s[f"{key}_ci95"]
            span = f" [{ci[0]:.2f}, {ci[1]:.2f}] over {len(b.rounds)} rounds" if ci else ""
            lines.append(f"{key}: {s[key]:.2f}x{span}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codegeex-lsp bench decode", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128, help="decoded tokens (llama-bench -n)")
    parser.add_argument("--prefill-tokens", type=int, default=512, help="prompt tokens (llama-bench -p)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per engine and round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of every engine in turn; the ratios get a 95%% interval over them (the host drifts)",
    )
    parser.add_argument(
        "--depth", type=int, default=0, help="cached context tokens before prefill and decode (llama-bench -d)"
    )
    parser.add_argument("--cache-dir")
    parser.add_argument("--no-bf16", action="store_true", help="skip ours bf16 (--quant none)")
    parser.add_argument("--no-llama-cpp", action="store_true", help="skip llama.cpp")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--isa",
        choices=llama_cpp.ISAS,
        default="native",
        help="native (default), or avx2: what an AVX2-only host runs (ours and llama.cpp), on this host",
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    bench = run(args, log)
    print(json.dumps(bench.summary()) if args.json else format_table(bench))
    return 0
