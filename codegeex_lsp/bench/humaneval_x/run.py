"""`codegeex-lsp bench humanevalx`: generate, execute and report, resumable at every step.

`--protocol` (`stops.PROTOCOLS`): `codegeex` (default: the raw prompt continued left to right,
CodeGeeX's stop and cleanup rules, as their published numbers), `fim` (the editor's FIM path, an
empty suffix), `instruct` (Python: the chat template and EvalPlus's answer extraction) or
`instruct-qwen` (Python: the request and stop strings of Qwen's own harness, EvalPlus's extraction).

Layout under `--out ROOT` (default test-artifacts/humanevalx): `ROOT/<variant>/` with variant
`canonical`, `fp` or `int4`, suffixed `-fim`, `-instruct` or `-instruct-qwen` for those protocols, holding `settings.json`, `generations/<lang>.jsonl` (one line per task:
the raw samples), `executions/<lang>.jsonl` (one line per executed sample) and `results.json`; the
report (`ROOT/report.md`, `ROOT/pass_at_1.png`) covers every variant present. An interrupted run
started again with the same settings skips the tasks and samples already on disk; different
settings in the same variant dir are refused rather than mixed.

Generation is sequential (the model is the bottleneck); execution runs in `--workers` threads, each
waiting on one sandboxed subprocess. Without a working sandbox (bubblewrap) the run is refused
before anything is generated, unless `--unsafe-no-sandbox` is given; settings record which ran.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from codegeex_lsp.bench.humaneval_x import report
from codegeex_lsp.bench.humaneval_x.dataset import LANGUAGES, Task, data_dir, load_tasks, sample_tasks
from codegeex_lsp.bench.humaneval_x.execute import execute
from codegeex_lsp.bench.humaneval_x.generator import (
    CanonicalGenerator,
    Generator,
    GeneratorInfo,
    load_model_generator,
)
from codegeex_lsp.bench.humaneval_x.metric import KS, mean_pass_at_k, pass_at_k
from codegeex_lsp.bench.humaneval_x.peer import PEER_MODELS
from codegeex_lsp.bench.humaneval_x.sandbox import Isolation, SandboxResult, require_isolation
from codegeex_lsp.bench.humaneval_x.stops import PROTOCOLS, postprocess
from codegeex_lsp.bench.humaneval_x.toolchains import Toolchain, find_toolchain
from codegeex_lsp.bench.stats import host_info
from codegeex_lsp.errors import CodegeexError, InputError

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("test-artifacts/humanevalx")
FAILURE_TAIL_CHARS = 800
# Settings that change what a cached generation means; the rest (workers, limit, langs) may vary.
_CACHE_KEYS = ("model", "model_hash", "quant", "n", "temperature", "max_tokens", "canonical", "protocol")
# What a key meant in runs recorded before it existed (those sent the prompt as a FIM request).
_LEGACY_SETTINGS: dict[str, Any] = {"protocol": "fim"}


@dataclass(frozen=True)
class RunOptions:
    """The command line, validated."""

    languages: tuple[str, ...] = LANGUAGES
    model: str | None = None
    quant: str = "int4"
    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 512
    limit: int | None = None
    sample: int | None = None
    seed: int = 1234
    workers: int = 1
    out: Path = DEFAULT_OUT
    data: Path | None = None
    canonical: bool = False
    model_card: dict[str, float] = field(default_factory=dict)
    unsafe_no_sandbox: bool = False
    protocol: str = "codegeex"
    peer_model: str | None = None  # set: llama.cpp's llama-server on that file (humaneval_x.peer)
    peer_threads: int = 0
    llama_server: str | None = None

    @property
    def variant(self) -> str:
        if self.canonical:
            return "canonical"
        if self.peer_model:
            return f"llama-{self.peer_model}"
        base = "int4" if self.quant == "int4" else "fp"
        return base if self.protocol == "codegeex" else f"{base}-{self.protocol}"


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The `bench humanevalx` arguments (the CLI mounts them under its own subcommand)."""
    parser = parser or argparse.ArgumentParser(prog="codegeex-lsp bench humanevalx", description=__doc__)
    parser.add_argument(
        "--langs", default=",".join(LANGUAGES), help="comma-separated: " + ",".join(LANGUAGES)
    )
    parser.add_argument("--model", default=None, help="model name or path (default: the engine's default)")
    parser.add_argument(
        "--quant", choices=("int4", "none"), default="int4", help="int4: what users run (default); none: float"
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="codegeex",
        help="codegeex: raw prompt left to right with CodeGeeX's stop rules (default); fim: the "
        "editor's FIM path; instruct: chat template + code-block extraction (Python only); "
        "instruct-qwen: Qwen's own harness request and stop strings (Python only; it used --max-tokens 2048)",
    )
    parser.add_argument(
        "--peer-model",
        choices=PEER_MODELS,
        default=None,
        help="ask llama.cpp's llama-server instead of our engine (greedy, codegeex protocol): gguf = the "
        "shipped GGUF as stored, q4_0 = its llama-quantize Q4_0 (variant llama-gguf / llama-q4_0)",
    )
    parser.add_argument("--peer-threads", type=int, default=0, help="llama-server -t (0: its default)")
    parser.add_argument("--llama-server", default=None, help="llama-server binary (default: the host's build)")
    parser.add_argument(
        "-n", "--samples", dest="n", type=int, default=1, help="samples per task (pass@k needs n >= k)"
    )
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--limit", type=int, default=None, help="only the first N tasks of each language")
    parser.add_argument(
        "--sample", type=int, default=None, help="N tasks per language drawn with --seed (not the first N)"
    )
    parser.add_argument("--seed", type=int, default=1234, help="seed of --sample (default %(default)s)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="dataset dir (default: $CODEGEEX_HUMANEVALX or the package's copy)",
    )
    parser.add_argument(
        "--canonical", action="store_true", help="execute the canonical solutions (harness check)"
    )
    parser.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run generated code WITHOUT the bubblewrap sandbox, as your own user (recorded in the results)",
    )
    parser.add_argument(
        "--model-card",
        default="",
        metavar="LANG=PCT,...",
        help="pass@1 figures from the model card, in percent",
    )
    return parser


def options_from_args(args: argparse.Namespace) -> RunOptions:
    languages = tuple(name.strip() for name in args.langs.split(",") if name.strip())
    if unknown := [name for name in languages if name not in LANGUAGES]:
        raise InputError(f"unknown language(s) {', '.join(unknown)}; choose from {','.join(LANGUAGES)}")
    if args.n < 1 or args.workers < 1 or any(v is not None and v < 1 for v in (args.limit, args.sample)):
        raise InputError("--samples, --workers, --limit and --sample must be positive")
    if args.protocol.startswith("instruct") and languages != ("python",):
        raise InputError(f"--protocol {args.protocol} is HumanEval, Python only (--langs python)")
    if args.peer_model and (args.protocol != "codegeex" or args.n != 1 or args.temperature != 0.0):
        raise InputError("--peer-model runs the codegeex protocol, greedy (-n 1, --temperature 0)")
    return RunOptions(
        languages=languages,
        model=args.model,
        quant=args.quant,
        n=args.n,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        limit=args.limit,
        sample=args.sample,
        seed=args.seed,
        workers=args.workers,
        out=args.out,
        data=args.data,
        canonical=args.canonical,
        model_card=_parse_model_card(args.model_card),
        protocol=args.protocol,
        unsafe_no_sandbox=args.unsafe_no_sandbox,
        peer_model=args.peer_model,
        peer_threads=args.peer_threads,
        llama_server=args.llama_server,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when --canonical finds a harness problem, 2 on user error."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        options = options_from_args(build_parser().parse_args(argv))
        require_isolation(unsafe_no_sandbox=options.unsafe_no_sandbox)  # refuse before any work
        tasks = {language: _load(language, options) for language in options.languages}
        if options.canonical:
            generator: Generator = CanonicalGenerator(task for group in tasks.values() for task in group)
            info = CanonicalGenerator.info
        elif options.peer_model:
            from codegeex_lsp.bench.humaneval_x.peer import make_peer_generator

            generator, info = make_peer_generator(
                options.peer_model,
                options.out / options.variant / "server.log",
                threads=options.peer_threads,
                llama_server=options.llama_server,
            )
        else:
            generator, info = load_model_generator(options.model, options.quant, options.protocol)
        try:
            results = run_benchmark(options, tasks, generator, info)
        finally:
            if callable(close := getattr(generator, "close", None)):
                close()
    except CodegeexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for path in report.write_report(options.out, options.model_card):
        log.info("wrote %s", path)
    sys.stdout.write(report.render_markdown({options.variant: results}, options.model_card))
    if options.canonical and (broken := harness_failures(results)):
        log.error("canonical solutions failing outside the known-bad list: %s", ", ".join(broken))
        return 1
    return 0


def run_benchmark(
    options: RunOptions, tasks: Mapping[str, Sequence[Task]], generator: Generator, info: GeneratorInfo
) -> dict[str, Any]:
    """Generate, execute and summarise every language; write and return the variant's results."""
    directory = options.out / options.variant
    isolation = require_isolation(unsafe_no_sandbox=options.unsafe_no_sandbox)
    settings = _settings(options, info, isolation)
    _claim_directory(directory, settings)
    results: dict[str, Any] = {
        "schema": report.SCHEMA_VERSION,
        "variant": options.variant,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "host": host_info(),
        "model": {"name": info.name, "model_hash": info.model_hash, "quant": info.quant},
        "settings": settings,
        "languages": {},
    }
    for language in options.languages:
        toolchain = find_toolchain(language)
        if not toolchain.available:
            log.warning("%s: skipped, %s", language, toolchain.reason)
            results["languages"][language] = {"available": False, "reason": toolchain.reason}
            continue
        started = time.monotonic()
        samples = generate_language(
            tasks[language], generator, options, directory / "generations" / f"{language}.jsonl"
        )
        generated = time.monotonic()
        records = execute_language(
            tasks[language],
            samples,
            toolchain,
            directory / "executions" / f"{language}.jsonl",
            workers=options.workers,
            truncate=not info.complete_programs,
            protocol=options.protocol,
            isolation=isolation,
        )
        wall_s = {"generate": generated - started, "execute": time.monotonic() - generated}
        results["languages"][language] = summarize_language(
            tasks[language], records, toolchain, wall_s, options.n
        )
        report.write_results(directory, results)  # partial results survive an interruption
    report.write_results(directory, results)
    return results


def generate_language(
    tasks: Sequence[Task], generator: Generator, options: RunOptions, path: Path
) -> dict[str, list[str]]:
    """task_id -> n raw samples; tasks already in `path` are not generated again."""
    done = {record["task_id"]: record["completions"] for record in _read_jsonl(path)}
    todo = [task for task in tasks if task.task_id not in done]
    language = tasks[0].language if tasks else ""
    with _append(path) as sink:
        for task in tqdm(todo, desc=f"generate {language}", unit="task", disable=not todo):
            completions = generator.generate(
                task.prompt,
                task.language,
                n=options.n,
                temperature=options.temperature,
                max_tokens=options.max_tokens,
            )
            if len(completions) != options.n:
                raise CodegeexError(
                    f"generator returned {len(completions)} samples for {task.task_id}, not {options.n}"
                )
            done[task.task_id] = list(completions)
            _write_line(sink, {"task_id": task.task_id, "completions": completions})
    return {task.task_id: done[task.task_id] for task in tasks}


def execute_language(
    tasks: Sequence[Task],
    samples: Mapping[str, Sequence[str]],
    toolchain: Toolchain,
    path: Path,
    *,
    workers: int,
    truncate: bool,
    protocol: str = "fim",
    isolation: Isolation | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """task_id -> one record per sample; samples already executed (same text) are reused.

    A sample whose execution raised (a harness bug, never the program's fault) is recorded as an
    "error" and the others go on; `isolation` defaults to `sandbox.require_isolation()`.
    """
    cached = {(r["task_id"], r["sample"], r["sha"]): r for r in _read_jsonl(path)}
    records: dict[str, list[dict[str, Any]]] = {task.task_id: [] for task in tasks}
    jobs: list[tuple[Task, int, str, str]] = []
    for task in tasks:
        for index, raw in enumerate(samples[task.task_id]):
            code = postprocess(protocol, task.language, task.prompt, raw) if truncate else raw
            sha = hashlib.sha256(code.encode()).hexdigest()[:16]
            # An "error" (sandbox or cleanup trouble, not the program's fault) is run again.
            if cached.get((task.task_id, index, sha), {}).get("status", "error") != "error":
                records[task.task_id].append(cached[(task.task_id, index, sha)])
            else:
                jobs.append((task, index, code, sha))
    language = toolchain.language
    with (
        _append(path) as sink,
        concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(jobs), desc=f"execute {language}", unit="sample", disable=not jobs) as bar,
    ):
        futures = {
            pool.submit(execute, task, code, toolchain, isolation): (task, index, sha)
            for task, index, code, sha in jobs
        }
        try:
            for future in concurrent.futures.as_completed(futures):
                task, index, sha = futures[future]
                record = _record(task.task_id, index, sha, _result_of(future))
                _write_line(sink, record)
                records[task.task_id].append(record)
                bar.update()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    for task_records in records.values():
        task_records.sort(key=lambda record: record["sample"])
    return records


def _result_of(future: concurrent.futures.Future[SandboxResult]) -> SandboxResult:
    try:
        return future.result()
    except OSError as exc:
        log.warning("sandbox error: %s", exc)
        return SandboxResult("error", None, "", "", 0.0, f"sandbox error: {exc}")


def summarize_language(
    tasks: Sequence[Task],
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    toolchain: Toolchain,
    wall_s: Mapping[str, float],
    n: int,
) -> dict[str, Any]:
    """One language's entry in results.json (see report's schema)."""
    per_task: dict[str, Any] = {}
    known_bad: dict[str, Any] = {}
    statuses: Counter[str] = Counter()
    for task in tasks:
        task_records = records[task.task_id]
        task_statuses = Counter(record["status"] for record in task_records)
        statuses.update(task_statuses)
        c = task_statuses["passed"]
        failure = next((record for record in task_records if record["status"] != "passed"), None)
        per_task[task.task_id] = {
            "n": len(task_records),
            "c": c,
            "pass_at_k": {
                f"pass@{k}": pass_at_k(len(task_records), c, k) for k in KS if k <= len(task_records)
            },
            "statuses": dict(task_statuses),
            "known_bad": task.known_bad,
            "first_failure": failure,
        }
        if task.known_bad:
            known_bad[task.task_id] = {"why": task.known_bad, "n": len(task_records), "c": c}
    return {
        "available": True,
        "reason": "",
        "versions": list(toolchain.versions),
        "notes": list(toolchain.notes),
        "n_tasks": len(tasks),
        "n_samples": n,
        "pass_at_k": mean_pass_at_k([(task["n"], task["c"]) for task in per_task.values()]),
        "n_tasks_all_passed": sum(task["c"] == task["n"] for task in per_task.values()),
        "statuses": dict(statuses),
        "known_bad": known_bad,
        "wall_s": dict(wall_s),
        # Resume-proof cost: wall_s covers only this invocation, cached samples took no time in it.
        "sandbox_s_total": round(
            sum(r["wall_s"] for task_records in records.values() for r in task_records), 3
        ),
        "tasks": per_task,
    }


def harness_failures(results: Mapping[str, Any]) -> list[str]:
    """Tasks not fully passing that are not known-bad (with canonical solutions: harness bugs)."""
    return [
        task_id
        for entry in results["languages"].values()
        for task_id, task in entry.get("tasks", {}).items()
        if task["c"] < task["n"] and not task["known_bad"]
    ]


def _load(language: str, options: RunOptions) -> list[Task]:
    try:
        tasks = load_tasks(language, options.data)
    except FileNotFoundError as exc:
        raise InputError(f"HumanEval-X data not found: {exc.filename} (pass --data DIR)") from None
    if options.sample:
        tasks = sample_tasks(tasks, options.sample, options.seed)
    return tasks[: options.limit] if options.limit else tasks


def _settings(options: RunOptions, info: GeneratorInfo, isolation: Isolation) -> dict[str, Any]:
    directory = data_dir(options.data)
    return {
        "model": info.name,
        "model_hash": info.model_hash,
        "quant": info.quant,
        "n": options.n,
        "temperature": options.temperature,
        "max_tokens": options.max_tokens,
        "canonical": options.canonical,
        "protocol": options.protocol,
        "languages": list(options.languages),
        "limit": options.limit,
        "sample": options.sample,
        "seed": options.seed,
        "workers": options.workers,
        "data_dir": str(directory),
        "data_sha256": {
            language: _sha256(directory / f"humanevalx_{language}.jsonl.gz") for language in options.languages
        },
        "isolation": isolation.note,
        "sandbox_mode": isolation.mode,
        "postprocess": "none (complete programs)"
        if info.complete_programs
        else f"stops.postprocess({options.protocol!r})",
    }


def _claim_directory(directory: Path, settings: Mapping[str, Any]) -> None:
    """Create the variant dir, or check that the run already in it used the same settings."""
    path = directory / "settings.json"
    if path.exists():
        previous = json.loads(path.read_text())
        changed = [
            key for key in _CACHE_KEYS if previous.get(key, _LEGACY_SETTINGS.get(key)) != settings.get(key)
        ]
        if changed:
            raise InputError(
                f"{directory} holds a run with other settings ({', '.join(changed)}); use another --out"
            )
    for sub in ("generations", "executions"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({key: settings[key] for key in _CACHE_KEYS}, indent=1) + "\n")


def _record(task_id: str, index: int, sha: str, result: SandboxResult) -> dict[str, Any]:
    record: dict[str, Any] = {
        "task_id": task_id,
        "sample": index,
        "sha": sha,
        "status": result.status,
        "returncode": result.returncode,
        "wall_s": round(result.wall_s, 3),
        "detail": result.detail,
    }
    if not result.passed:
        record["stdout"] = result.stdout[-FAILURE_TAIL_CHARS:]
        record["stderr"] = result.stderr[-FAILURE_TAIL_CHARS:]
    return record


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of `path`; a torn last line (the run was killed mid-write) is cut off.
    Records end at "\n" only: `str.splitlines` would also split inside a JSON string at U+0085 or
    U+2028, which program output (kept unescaped) can contain."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    return [json.loads(line) for line in complete.decode("utf-8").split("\n") if line.strip()]


def _append(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a", encoding="utf-8")


def _write_line(sink: TextIO, record: Mapping[str, Any]) -> None:
    sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    sink.flush()


def _parse_model_card(text: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        language, _, value = item.partition("=")
        if language not in LANGUAGES:
            raise InputError(f"--model-card: unknown language {language!r}")
        try:
            figures[language] = float(value)
        except ValueError:
            raise InputError(f"--model-card: {item!r} is not LANG=PERCENT") from None
    return figures


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def _git_commit() -> str:
    """HEAD of the checkout this package runs from ("" outside git); read-only, takes no locks."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


if __name__ == "__main__":
    sys.exit(main())
