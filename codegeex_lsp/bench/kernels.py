"""`codegeex-lsp bench kernels`: the int4 decode kernels on the embedded model's real matrix shapes.

Per shape (Qwen2.5-Coder-0.5B: qkv, o, gate_up, down, lm head) and one activation row (decode):
µs and GB/s of packed weights for our kernel on its active CPU path (`--cpu-path`, default the best
this CPU runs; `--compare-paths` adds our other SIMD paths as `ours_<path>`), its share of a memory-read probe measured in the same
run, and the same call through torch fp32 / bf16 F.linear, torch's own int4 op
(`_weight_int4pack_mm_for_cpu`, fed the very same quantized weights), llama.cpp's ggml mul_mat on
Q4_0 / Q4_K weights (from the installed llama-cpp-python, see ggml_gemv.py) and bitsandbytes nf4 / int8
when they run here. Then the quantization error of each mode (output vs fp32).

Timings are the minimum over single calls (medians in --json), taken in `--repeat` short rounds with
all candidates interleaved, so a busy machine slows them alike. `--cold` cycles through enough weight copies to defeat the caches,
as a real decode step does (the whole model streams from DRAM once per token).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field

import torch

from codegeex_lsp.bench import ggml_gemv
from codegeex_lsp.quant import bnb as bnb_compare
from codegeex_lsp.quant import ops
from codegeex_lsp.quant import reference as R
from codegeex_lsp.quant.gptq import gptq_quantize
from codegeex_lsp.quant.packing import LAYOUT_VERSION, pack_int4

# (name, out_features N, in_features K) of Qwen2.5-Coder-0.5B with the engine's fused projections.
SHAPES: tuple[tuple[str, int, int], ...] = (
    ("wqkv", 1152, 896),
    ("wo", 896, 896),
    ("w_gate_up", 9728, 896),
    ("w_down", 896, 4864),
    ("output", 151936, 896),
)
LAYERS = 24  # decoder layers: the per-token weight traffic is 24 x (qkv + o + gate_up + down) + head
PROBE_BYTES = 256 << 20
COLD_BYTES = 192 << 20  # > L3 of laptop and server parts: each call reads from DRAM
MAX_COPIES = 64
ERROR_ROWS = 4096  # output rows used for the quantization-error table (the head is sampled)
ERROR_TOKENS = 64
OUTLIER_CHANNELS = 8  # synthetic activations: a few channels 20x larger, as in real LLM hidden states


@dataclass
class ShapeResult:
    name: str
    n: int
    k: int
    group_size: int
    ours_us: float
    ours_gbps: float
    ours_pct_probe: float
    packed_bytes: int
    others_us: dict[str, float] = field(default_factory=dict)
    ours_vs: dict[str, float] = field(default_factory=dict)  # speedup of ours over each other
    median_us: dict[str, float] = field(default_factory=dict)  # every candidate, ours included
    notes: dict[str, str] = field(default_factory=dict)  # llama.cpp: its weight buffer, or "n/a (why)"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="codegeex-lsp bench kernels", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: keep torch's default)")
    p.add_argument("--repeat", type=int, default=50, help="timing rounds; the minimum is reported")
    p.add_argument("--group-size", type=int, default=32, choices=R.GROUP_SIZES)
    p.add_argument("--rows", type=int, default=1, help="activation rows (1 = decode; 256 = a prefill chunk)")
    p.add_argument("--shapes", default=",".join(s[0] for s in SHAPES), help="comma-separated subset")
    p.add_argument("--cold", action="store_true", help="rotate weight copies so every call reads DRAM")
    p.add_argument(
        "--cpu-path", default="auto", choices=["auto", *ops.CPU_PATHS], help="our kernel's CPU path"
    )
    p.add_argument(
        "--compare-paths", action="store_true", help="also time our other SIMD paths (ours_avx2 ...)"
    )
    p.add_argument("--no-bnb", action="store_true", help="skip bitsandbytes even where it runs")
    p.add_argument("--no-llama-cpp", action="store_true", help="skip llama.cpp (ggml) even where it runs")
    p.add_argument("--no-errors", action="store_true", help="skip the quantization-error table")
    return p.parse_args(argv)


def _timed(fn: Callable[[], object], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def _samples(fn: Callable[[], object], calls: int) -> list[float]:
    """Seconds of each of `calls` calls, timed one by one: on a shared machine a descheduled thread
    spoils single calls, not a whole round."""
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _copies(nbytes: int, cold: bool) -> int:
    return max(1, min(MAX_COPIES, -(-COLD_BYTES // max(nbytes, 1)))) if cold else 1


def _rotating(fn: Callable[..., object], *weights: torch.Tensor, cold: bool) -> Callable[[], object]:
    """fn(*weights), cycling through independent copies of `weights` when cold (defeats the caches)."""
    nbytes = sum(w.numel() * w.element_size() for w in weights)
    n_copies = _copies(nbytes, cold)
    sets = [weights] + [tuple(w.clone() for w in weights) for _ in range(n_copies - 1)]
    state = {"i": 0}

    def run() -> object:
        state["i"] = (state["i"] + 1) % n_copies
        return fn(*sets[state["i"]])

    return run


def bandwidth_probe_gbps(repeat: int) -> float:
    """Read bandwidth of a plain sweep over 256 MiB of fp32 (the best of torch.sum and torch.dot of
    the buffer with itself, which reads it once), best of several runs."""
    big = torch.ones(PROBE_BYTES // 4)
    sweeps = [big.sum, lambda: torch.dot(big, big)]
    for fn in sweeps:
        fn()
    best = min(_timed(fn, 1) for _ in range(max(3, repeat // 5)) for fn in sweeps)
    return PROBE_BYTES / best / 1e9


def _torch_int4(qw: R.Int4Weight) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's int4 CPU format for our quantized weight: w = (q - 8) * scale + zero, so
    scale = d and zero = d * (8 - z); the same int4 codes, so the outputs agree too."""
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(qw.q.to(torch.int32), 1)
    d = qw.scale  # [N, ng]
    zero = d * (8.0 - qw.zero.float())
    scales_zeros = (
        torch.stack([d, zero], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
    )  # [ng, N, 2]
    return packed, scales_zeros


def _llama_cpp(
    w: torch.Tensor, x: torch.Tensor, qtype: str, cold: bool, stack: ExitStack
) -> tuple[Callable[[], object] | None, str]:
    """llama.cpp's GEMV on `w` as `qtype`, checked against x @ dequant(w).T, and a note: the weight's
    buffer type, or why it does not run ("n/a (...)"); never raises for ggml's sake."""
    n, k = w.shape
    problem = ggml_gemv.check_shape(qtype, n, k)
    if problem:
        return None, f"n/a ({problem})"
    try:
        nbytes = ggml_gemv.quantized_bytes(qtype, n, k)
        op = stack.enter_context(
            ggml_gemv.GgmlGemv(
                w, qtype, rows=x.shape[0], n_threads=torch.get_num_threads(), copies=_copies(nbytes, cold)
            )
        )
        y_ref = x @ op.dequantized().T
        err = float((op(x) - y_ref).norm() / y_ref.norm())
    except (ggml_gemv.GgmlUnavailable, RuntimeError, ValueError) as exc:
        return None, f"n/a ({exc})"
    if err > 0.05:  # Q8 activations cost ~0.5%: more means the binding is wrong, not slow
        return None, f"n/a (result disagrees with x @ dequant(W).T: rel. error {err:.3f})"
    return op.run, op.buffer_type


def bench_shape(
    name: str,
    n: int,
    k: int,
    args: argparse.Namespace,
    probe_gbps: float,
    bnb_kinds: list[str],
    llama_qtypes: tuple[str, ...] = (),
) -> ShapeResult:
    with ExitStack() as stack:
        return _bench_shape(name, n, k, args, probe_gbps, bnb_kinds, llama_qtypes, stack)


def _bench_shape(
    name: str,
    n: int,
    k: int,
    args: argparse.Namespace,
    probe_gbps: float,
    bnb_kinds: list[str],
    llama_qtypes: tuple[str, ...],
    stack: ExitStack,
) -> ShapeResult:
    g = args.group_size
    gen = torch.Generator().manual_seed(n * 7 + k)
    w = torch.randn(n, k, generator=gen) * 0.02  # [N, K]
    x = torch.randn(args.rows, k, generator=gen)  # [M, K]
    qw = R.quantize(w, "asym", g)
    packed = pack_int4(qw)
    nbytes = packed.numel()
    cold = args.cold

    t_packed, t_sz = _torch_int4(qw)
    xb = x.to(torch.bfloat16)
    wb = w.to(torch.bfloat16)
    cands: dict[str, Callable[[], object]] = {
        "ours": _rotating(lambda p: torch.ops.codegeex_lsp.int4_gemm(x, p, k, g, None), packed, cold=cold),
        "torch_int4": _rotating(
            lambda p, s: torch.ops.aten._weight_int4pack_mm_for_cpu(xb, p, g, s), t_packed, t_sz, cold=cold
        ),
        "fp32": _rotating(lambda ww: torch.nn.functional.linear(x, ww), w, cold=cold),
        "bf16": _rotating(lambda ww: torch.nn.functional.linear(xb, ww), wb, cold=cold),
    }
    if args.compare_paths:
        for path in ops.supported_cpu_paths():
            if path not in {"ref", ops.cpu_path()}:
                cands[f"ours_{path}"] = _rotating(
                    lambda p, path=path: torch.ops.codegeex_lsp.int4_gemm_impl(x, p, k, g, None, path),
                    packed,
                    cold=cold,
                )
    notes: dict[str, str] = {}
    for qtype in llama_qtypes:
        fn, notes[f"llama_cpp_{qtype}"] = _llama_cpp(w, x, qtype, cold, stack)
        if fn is not None:
            cands[f"llama_cpp_{qtype}"] = fn
    slow: dict[str, Callable[[], object]] = {}
    for kind in bnb_kinds:
        linear = torch.nn.Linear(k, n, bias=False)
        with torch.no_grad():
            linear.weight.copy_(w)
        module = bnb_compare.bnb_linear(linear, kind)
        if module is not None:
            slow[f"bnb_{kind}"] = lambda m=module: m(x)

    samples: dict[str, list[float]] = {key: [] for key in [*cands, *slow]}
    with torch.inference_mode():
        y_ours = torch.ops.codegeex_lsp.int4_gemm(x, packed, k, g, None)
        y_torch = torch.ops.aten._weight_int4pack_mm_for_cpu(xb, t_packed, g, t_sz).float()
        agree = float((y_ours - y_torch).norm() / y_torch.norm())
        if agree > 0.05:
            raise RuntimeError(
                f"{name}: torch int4 and ours disagree ({agree:.3f}): the comparison is invalid"
            )
        for fn in [*cands.values(), *slow.values()]:
            fn()
        # short rounds (~0.3 ms of our kernel), candidates interleaved, every call timed
        per_round = max(1, int(3e-4 / max(_timed(cands["ours"], 3), 1e-7)))
        for _ in range(args.repeat):
            for key, fn in cands.items():
                samples[key] += _samples(fn, per_round)
        for key, fn in slow.items():
            samples[key] += _samples(fn, max(2, args.repeat // 10))
    best = {key: min(v) for key, v in samples.items()}
    median = {key: statistics.median(v) for key, v in samples.items()}
    ours = best.pop("ours")
    gbps = nbytes / ours / 1e9
    return ShapeResult(
        name=name,
        n=n,
        k=k,
        group_size=g,
        ours_us=ours * 1e6,
        ours_gbps=gbps,
        ours_pct_probe=100.0 * gbps / probe_gbps,
        packed_bytes=nbytes,
        others_us={key: t * 1e6 for key, t in best.items()},
        ours_vs={key: t / ours for key, t in best.items()},
        median_us={key: t * 1e6 for key, t in median.items()},
        notes=notes,
    )


def quant_errors(names: list[str], group_size: int) -> dict[str, dict[str, float]]:
    """Relative output error vs fp32, per shape and mode, on activations with outlier channels
    (AWQ and GPTQ calibrate on one batch and are scored on another). Weights: N(0, 0.02) like an init."""
    out: dict[str, dict[str, float]] = {}
    for name, n, k in SHAPES:
        if name not in names:
            continue
        gen = torch.Generator().manual_seed(n * 7 + k)
        w = torch.randn(min(n, ERROR_ROWS), k, generator=gen) * 0.02
        cols = torch.randperm(k, generator=gen)[:OUTLIER_CHANNELS]
        calib, held = (torch.randn(ERROR_TOKENS, k, generator=gen) for _ in range(2))
        calib[:, cols] *= 20.0
        held[:, cols] *= 20.0
        y = held @ w.T
        row: dict[str, float] = {}
        for mode in R.MODES:
            if mode == "awq":
                qw, inv_s = R.awq_quantize(w, calib, group_size)
                w_eff = R.dequantize_groupwise(qw) * inv_s[None, :]
            elif mode == "gptq":
                w_eff = R.dequantize_groupwise(gptq_quantize(w, calib.T @ calib, group_size))
            else:
                w_eff = R.fake_quantize(w, mode, group_size)
            row[mode] = float((held @ w_eff.T - y).norm() / y.norm())
        qw = R.quantize(w, "asym", group_size)
        y_kernel = ops.int4_gemm(held[:16], pack_int4(qw), k, group_size, None)  # + int8 activation rounding
        row["asym+kernel"] = float((y_kernel - y[:16]).norm() / y[:16].norm())
        out[name] = row
    return out


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt_us(value: float | None) -> str:
    return "-" if value is None else (f"{value:.0f}" if value >= 1000 else f"{value:.1f}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.rows < 1:
        print("error: --rows must be at least 1", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if ops.extension() is None:
        print(
            f"error: codegeex_lsp._kernels is not built ({ops.extension_error()}); nothing to benchmark",
            file=sys.stderr,
        )
        return 1
    try:
        ops.set_cpu_path(args.cpu_path)
    except ValueError as exc:
        print(f"error: --cpu-path {args.cpu_path}: {exc}", file=sys.stderr)
        return 2
    names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = set(names) - {s[0] for s in SHAPES}
    if unknown:
        print(
            f"error: unknown shapes {sorted(unknown)}; choose from {[s[0] for s in SHAPES]}", file=sys.stderr
        )
        return 2
    bnb_kinds = [] if args.no_bnb or bnb_compare.unavailable_reason() else list(bnb_compare.BNB_KINDS)
    llama_reason = "skipped" if args.no_llama_cpp else ggml_gemv.unavailable_reason()
    llama_qtypes = () if llama_reason else tuple(ggml_gemv.QTYPES)
    probe = bandwidth_probe_gbps(args.repeat)
    results = [
        bench_shape(name, n, k, args, probe, bnb_kinds, llama_qtypes)
        for name, n, k in SHAPES
        if name in names
    ]
    errors = {} if args.no_errors else quant_errors(names, args.group_size)
    per_token = {r.name: r for r in results}
    token_us = None
    if {"wqkv", "wo", "w_gate_up", "w_down", "output"} <= per_token.keys():
        layer = ["wqkv", "wo", "w_gate_up", "w_down"]
        token_us = {
            impl: LAYERS * sum(per_token[s].others_us[impl] for s in layer)
            + per_token["output"].others_us[impl]
            for impl in sorted({key for r in per_token.values() for key in r.others_us})
            if all(impl in r.others_us for r in per_token.values())
        }
        token_us["ours"] = LAYERS * sum(per_token[s].ours_us for s in layer) + per_token["output"].ours_us
    env = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "ours_cpu_path": ops.cpu_path(),
        "ours_cpu_paths": ops.supported_cpu_paths(),
        "layout_version": LAYOUT_VERSION,
        "rows": args.rows,
        "group_size": args.group_size,
        "cold": args.cold,
        "probe_gbps": probe,
        "bnb": bnb_kinds or ("skipped" if args.no_bnb else bnb_compare.unavailable_reason()),
        "llama_cpp": llama_reason or ggml_gemv.describe(),
    }
    if args.json:
        print(
            json.dumps(
                {
                    "env": env,
                    "shapes": [asdict(r) for r in results],
                    "quant_error": errors,
                    "matmul_us_per_token": token_us,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"ours=cpp/{env['ours_cpu_path']} threads={env['threads']} torch={env['torch']} "
        f"({env['torch_cpu_capability']}) rows={args.rows} "
        f"G={args.group_size} {'cold (DRAM)' if args.cold else 'hot (cache-resident where it fits)'}; "
        f"bandwidth probe {probe:.1f} GB/s"
    )
    others = sorted(
        {key for r in results for key in [*r.others_us, *r.notes]}, key=lambda s: (s.startswith("bnb"), s)
    )
    rows = [
        [
            "shape",
            "N x K",
            "ours us",
            "GB/s",
            "%probe",
            *[f"{o} us" for o in others],
            *[f"vs {o}" for o in others],
        ]
    ]
    for r in results:
        rows.append(
            [
                r.name,
                f"{r.n}x{r.k}",
                _fmt_us(r.ours_us),
                f"{r.ours_gbps:.1f}",
                f"{r.ours_pct_probe:.0f}%",
                *[
                    "n/a" if o in r.notes and o not in r.others_us else _fmt_us(r.others_us.get(o))
                    for o in others
                ],
                *[f"{r.ours_vs[o]:.2f}x" if o in r.ours_vs else "-" for o in others],
            ]
        )
    print(_table(rows))
    if llama_reason != "skipped":
        print(f"llama.cpp: {env['llama_cpp'] if not llama_reason else f'n/a ({llama_reason})'}")
    not_run: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for key, note in r.notes.items():
            if note.startswith("n/a"):
                not_run.setdefault((key, note), []).append(r.name)
    for (key, note), shapes in not_run.items():
        print(f"  {key} {note.replace('n/a (', 'n/a on ' + ', '.join(shapes) + ' (', 1)}")
    if token_us:
        print(
            "matmuls per token (24 layers + head), us: "
            + ", ".join(f"{k}={v:.0f}" for k, v in token_us.items())
        )
    if errors:
        modes = list(next(iter(errors.values())))
        err_rows = [["rel. output error vs fp32", *modes]]
        err_rows += [[name, *[f"{row[m]:.4f}" for m in modes]] for name, row in errors.items()]
        print()
        print(_table(err_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
