"""`codegeex-lsp bench infill`: cut, generate, execute and report, resumable at every step.

Two suites: `humanevalx` (default), our own masks cut from HumanEval-X canonical solutions in six
languages (problems drawn with a seed across all 164, split tune/heldout), and `humaneval-infilling`,
the standard Python benchmark scored with its own program (`suite`). `--peer llama-server` runs the
same tasks through llama.cpp's `/infill` (`peer`) as variant `peer-llama-server`.

Layout under `--out ROOT` (default test-artifacts/infill, or test-artifacts/humaneval-infilling): `ROOT/<variant>/` holding
`settings.json`, `tasks/<lang>.jsonl` (the cut tasks: ids, cursor, true middle, editor mode),
`generations/<lang>.jsonl` (one infill per task), `executions/<lang>.jsonl` (one test run per
distinct program), `model.json`, `server.log` (with `--through-lsp`) and `results.json`; the report
(`ROOT/infill_report.md`, `ROOT/infill_pass_at_1.png`) covers every variant present. A run started again
skips what is on disk (a task whose text changed is generated again); a variant dir that holds a
run with other generation settings is refused rather than mixed.

The model (or the server) is started only when something is left to generate; all generation
comes first, then the model is released and the tests run in `--workers` threads.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from codegeex_lsp.bench.humaneval_x.dataset import KNOWN_BAD, LANGUAGES, data_dir, load_tasks
from codegeex_lsp.bench.humaneval_x.run import (
    _append,
    _git_commit,
    _read_jsonl,
    _record,
    _sha256,
    _write_line,
)
from codegeex_lsp.bench.humaneval_x.sandbox import probe_isolation
from codegeex_lsp.bench.humaneval_x.toolchains import Toolchain, find_toolchain
from codegeex_lsp.bench.infill import report
from codegeex_lsp.bench.infill import suite as standard
from codegeex_lsp.bench.infill.infillers import (
    MODE_SOURCES,
    CanonicalInfiller,
    Infill,
    Infiller,
    InfillerInfo,
    server_settings,
)
from codegeex_lsp.bench.infill.peer import PEERS, PeerMissing
from codegeex_lsp.bench.infill.score import exact_match, program_sha, run_tests
from codegeex_lsp.bench.infill.tasks import DEFAULT_SEED, KINDS, SPLIT_CHOICES, InfillTask, select_tasks
from codegeex_lsp.bench.stats import host_info
from codegeex_lsp.config import DEFAULT_MODEL
from codegeex_lsp.engine.load import quant_label
from codegeex_lsp.errors import CodegeexError, InputError
from codegeex_lsp.postprocess.pipeline import POSTPROCESS_VERSION
from codegeex_lsp.server.options import ContextBudgets, DecodingSettings, ModelOptions

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("test-artifacts/infill")
DEFAULT_OUTS = {"humanevalx": DEFAULT_OUT, standard.SUITE: Path("test-artifacts/humaneval-infilling")}
SUITES: tuple[str, ...] = tuple(DEFAULT_OUTS)
# Settings that change what a cached generation means; the rest (langs, kinds, limit, workers) may vary.
_CACHE_KEYS = (
    "model",
    "format",
    "dtype",
    "quant",
    "mode",
    "through_lsp",
    "max_tokens_line",
    "max_tokens_block",
    "canonical",
    "carry_line",
    "suite",
    "peer",
    "postprocess",
)
# What a key meant in runs recorded before it existed (runs before line carry did not carry).
_LEGACY_SETTINGS: dict[str, Any] = {
    "carry_line": False,
    "suite": "humanevalx",
    "peer": None,
    "postprocess": 1,
}


@dataclass(frozen=True)
class RunOptions:
    """The command line, validated."""

    languages: tuple[str, ...] = LANGUAGES
    kinds: tuple[str, ...] = KINDS
    model: str = DEFAULT_MODEL
    format: str | None = None
    dtype: str = "auto"
    threads: int = 0
    quant: str = "int4"
    per_task: int = 1
    limit: int | None = None
    seed: int = DEFAULT_SEED
    workers: int = 1
    out: Path = DEFAULT_OUT
    data: Path | None = None
    through_lsp: bool = False
    canonical: bool = False
    mode: str = "kind"
    max_tokens_line: int = DecodingSettings().max_tokens_line
    max_tokens_block: int = DecodingSettings().max_tokens_block
    carry_line: bool = ContextBudgets().carry_line
    command: str = ""
    suite: str = "humanevalx"
    split: str = "all"
    samples: tuple[tuple[str, int | None], ...] = tuple(standard.DEFAULT_SAMPLES.items())
    peer: str | None = None
    llama_server: str | None = None

    @property
    def variant(self) -> str:
        if self.canonical:
            return "canonical"
        if self.peer:
            return f"peer-{self.peer}"
        base = "int4" if self.quant == "int4" else "fp"
        if self.through_lsp:
            base = f"{base}-lsp"
        elif self.mode == "context":
            base = f"{base}-ctx"
        return base if self.carry_line else f"{base}-nocarry"

    @property
    def model_options(self) -> ModelOptions:
        return ModelOptions(
            name=self.model, format=self.format, dtype=self.dtype, quant=self.quant, threads=self.threads
        )

    @property
    def settings(self) -> dict[str, Any]:
        return server_settings(self.max_tokens_line, self.max_tokens_block, self.carry_line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codegeex-lsp bench infill",
        description="Fill masked single lines, line blocks and random spans of HumanEval-X canonical "
        "solutions; score by running the tests.",
    )
    parser.add_argument(
        "--suite",
        choices=SUITES,
        default="humanevalx",
        help="humanevalx: our masks of HumanEval-X solutions (six languages); humaneval-infilling: "
        "the standard Python benchmark, scored with its own program",
    )
    parser.add_argument(
        "--langs",
        default=None,
        help="comma-separated: " + ",".join(LANGUAGES) + " (default: all of the suite)",
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: " + ",".join(KINDS))
    parser.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default="all",
        help="problems of one split only (tune: recipes may be chosen on it; heldout: never); "
        "every result records each task's split either way",
    )
    for kind, size in standard.DEFAULT_SAMPLES.items():
        parser.add_argument(
            f"--sample-{kind}",
            type=int,
            default=size,
            help=f"humaneval-infilling: seeded sample of {kind} tasks (default: {size or 'all'})",
        )
    parser.add_argument(
        "--peer", choices=PEERS, default=None, help="run the tasks through a peer instead (llama.cpp /infill)"
    )
    parser.add_argument(
        "--llama-server",
        default=None,
        help="llama-server binary (default: $CODEGEEX_LLAMA_SERVER, else <cache>/llama.cpp/*/bin/llama-server)",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or path (default: %(default)s)")
    parser.add_argument("--format", help="prompt format (default: detected from the tokenizer)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument(
        "--quant",
        choices=("int4", "none"),
        default="int4",
        help="int4: what users run (default); none: float",
    )
    parser.add_argument("--per-task", type=int, default=1, help="masks per kind and problem (default 1)")
    parser.add_argument(
        "--limit", type=int, default=None, help="at most N tasks per language and kind (a seeded draw)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument(
        "--out", type=Path, default=None, help="default: test-artifacts/<infill|humaneval-infilling>"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="HumanEval-X dir (default: the package's copy)"
    )
    parser.add_argument(
        "--through-lsp", action="store_true", help="send each task to a `codegeex-lsp serve` process"
    )
    parser.add_argument("--canonical", action="store_true", help="insert the true middles (harness check)")
    parser.add_argument(
        "--mode",
        choices=MODE_SOURCES,
        default=None,
        help="LINE/BLOCK by mask kind, or the context stage's decision (default: kind; "
        "--through-lsp: context, the server decides)",
    )
    parser.add_argument("--max-tokens-line", type=int, default=DecodingSettings().max_tokens_line)
    parser.add_argument("--max-tokens-block", type=int, default=DecodingSettings().max_tokens_block)
    parser.add_argument(
        "--no-carry-line",
        dest="carry_line",
        action="store_false",
        help="keep the cursor line at the end of the prefix instead of after the middle token "
        "(server setting context.carryLine=false; variant suffix -nocarry)",
    )
    return parser


def options_from_args(args: argparse.Namespace, command: str = "") -> RunOptions:
    standard_suite = args.suite == standard.SUITE
    languages = _split(args.langs) if args.langs else (("python",) if standard_suite else LANGUAGES)
    kinds = _split(args.kinds)
    if standard_suite and languages != ("python",):
        raise InputError(f"--suite {standard.SUITE} is Python only (--langs python)")
    samples = tuple((kind, getattr(args, f"sample_{kind}")) for kind in standard.DEFAULT_SAMPLES)
    if any(size is not None and size < 1 for _, size in samples):
        raise InputError("--sample-* must be positive")
    if args.peer and (args.through_lsp or args.canonical):
        raise InputError(
            "--peer runs the peer alone (on the GGUF as stored): no --through-lsp or --canonical"
        )
    if unknown := [name for name in languages if name not in LANGUAGES]:
        raise InputError(f"unknown language(s) {', '.join(unknown)}; choose from {','.join(LANGUAGES)}")
    if unknown := [name for name in kinds if name not in KINDS]:
        raise InputError(f"unknown mask kind(s) {', '.join(unknown)}; choose from {','.join(KINDS)}")
    counts = {
        "--per-task": args.per_task,
        "--workers": args.workers,
        "--limit": args.limit,
        "--max-tokens-line": args.max_tokens_line,
        "--max-tokens-block": args.max_tokens_block,
    }
    if bad := [flag for flag, value in counts.items() if value is not None and value < 1]:
        raise InputError(f"{', '.join(bad)} must be positive")
    if args.through_lsp and args.mode == "kind":
        raise InputError("--through-lsp: the server decides the mode from the context stage (--mode context)")
    if args.through_lsp and args.canonical:
        raise InputError("--canonical checks the harness; it does not go through the server")
    return RunOptions(
        languages=languages,
        kinds=kinds,
        model=args.model,
        format=args.format,
        dtype=args.dtype,
        threads=args.threads,
        quant=args.quant,
        per_task=args.per_task,
        limit=args.limit,
        seed=args.seed,
        workers=args.workers,
        out=args.out or DEFAULT_OUTS[args.suite],
        data=args.data,
        through_lsp=args.through_lsp,
        canonical=args.canonical,
        mode=args.mode or ("context" if args.through_lsp else "kind"),
        max_tokens_line=args.max_tokens_line,
        max_tokens_block=args.max_tokens_block,
        carry_line=args.carry_line,
        command=command,
        suite=args.suite,
        split=args.split,
        samples=samples,
        peer=args.peer,
        llama_server=args.llama_server,
    )


def main(argv: list[str] | None = None) -> int:
    """0 on success, 1 when --canonical finds a harness problem, 2 on a user error."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        options = options_from_args(build_parser().parse_args(argv), _command(argv))
        tasks = {language: cut_language(language, options) for language in options.languages}
        results = run_benchmark(options, tasks, infiller_factory(options))
    except PeerMissing as exc:
        log.warning("peer missing: %s", exc)
        results = record_missing_peer(options, str(exc))
    except CodegeexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for path in report.write_report(options.out):
        log.info("wrote %s", path)
    sys.stdout.write(report.render_markdown({options.variant: results}))
    if options.canonical and (broken := failing_tasks(results)):
        log.error("canonical middles failing: %s", ", ".join(broken))
        return 1
    return 0


def cut_language(language: str, options: RunOptions) -> list[InfillTask]:
    if options.suite == standard.SUITE:
        return standard.load_suite(
            options.kinds, dict(options.samples), options.seed, options.limit, options.split
        )
    try:
        problems = load_tasks(language, options.data)
    except FileNotFoundError as exc:
        raise InputError(f"HumanEval-X data not found: {exc.filename} (pass --data DIR)") from None
    return select_tasks(problems, options.kinds, options.per_task, options.seed, options.limit, options.split)


def infiller_factory(options: RunOptions) -> Callable[[], Infiller]:
    """Builds the infiller the options ask for (loading a model or starting a server)."""

    def make() -> Infiller:
        if options.canonical:
            return CanonicalInfiller()
        if options.peer:
            from codegeex_lsp.bench.infill.peer import LlamaServerInfiller, find_llama_server, model_gguf

            binary, reason = find_llama_server(options.llama_server)
            if binary is None:
                raise PeerMissing(reason)
            gguf, digest = model_gguf(options.model)
            log_path = options.out / options.variant / "server.log"
            return LlamaServerInfiller(binary, gguf, digest, log_path, threads=options.threads)
        if options.through_lsp:
            from codegeex_lsp.bench.infill.lsp import LspInfiller

            return LspInfiller(
                options.model_options, options.settings, options.out / options.variant / "server.log"
            )
        from codegeex_lsp.bench.infill.infillers import EngineInfiller

        return EngineInfiller(options.model_options, options.quant, options.settings, options.mode)

    return make


def run_benchmark(
    options: RunOptions, tasks: Mapping[str, Sequence[InfillTask]], make_infiller: Callable[[], Infiller]
) -> dict[str, Any]:
    """Generate every language, then execute and summarise; write and return the variant's results."""
    directory = options.out / options.variant
    settings = _settings(options)
    _claim_directory(directory, settings)
    toolchains = {language: find_toolchain(language) for language in options.languages}
    for language, toolchain in toolchains.items():
        if not toolchain.available:
            log.warning("%s: skipped, %s", language, toolchain.reason)
        _write_tasks(directory / "tasks" / f"{language}.jsonl", tasks[language])

    lazy = _LazyInfiller(make_infiller, directory / "model.json")
    generate_s: dict[str, float] = {}
    infills: dict[str, dict[str, Infill]] = {}
    try:
        for language in options.languages:
            if toolchains[language].available:
                started = time.monotonic()
                path = directory / "generations" / f"{language}.jsonl"
                infills[language] = generate_language(tasks[language], lazy, path)
                generate_s[language] = time.monotonic() - started
    finally:
        lazy.close()

    results: dict[str, Any] = {
        **_results_header(options),
        "model": lazy.info_json(),
        "settings": settings,
        "languages": {},
    }
    for language in options.languages:
        toolchain = toolchains[language]
        if not toolchain.available:
            results["languages"][language] = {"available": False, "reason": toolchain.reason}
            continue
        started = time.monotonic()
        records = execute_language(
            tasks[language],
            infills[language],
            toolchain,
            directory / "executions" / f"{language}.jsonl",
            workers=options.workers,
        )
        wall_s = {"generate": generate_s[language], "execute": time.monotonic() - started}
        results["languages"][language] = summarize_language(
            language, tasks[language], infills[language], records, toolchain, wall_s, options.kinds
        )
    results["totals"] = report.totals(results["languages"], options.kinds)
    report.write_results(directory, results)
    return results


def _results_header(options: RunOptions) -> dict[str, Any]:
    """What every results file of a variant starts with: schema, variant, when, commit, host, command."""
    return {
        "schema": report.SCHEMA_VERSION,
        "benchmark": "infill",
        "variant": options.variant,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "host": host_info(),
        "command": options.command,
    }


def record_missing_peer(options: RunOptions, reason: str) -> dict[str, Any]:
    """A peer that cannot run still gets a results file, so the report says why its column is empty."""
    directory = options.out / options.variant
    directory.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        **_results_header(options),
        "missing": reason,
        "model": dataclasses.asdict(InfillerInfo(name=f"peer {options.peer}", model_hash="")),
        "settings": _settings(options),
        "languages": {},
        "totals": {},
    }
    report.write_results(directory, results)
    return results


def generate_language(tasks: Sequence[InfillTask], infiller: Infiller, path: Path) -> dict[str, Infill]:
    """task_id -> infill; tasks already in `path` with the same text are not generated again."""
    done: dict[tuple[str, str], Infill] = {}
    for record in _read_jsonl(path):
        fields = {key: record[key] for key in ("text", "start", "end", "mode", "seconds", "detail")}
        done[(record["task_id"], record["sha"])] = Infill(**fields)
    todo = [task for task in tasks if (task.task_id, task.sha) not in done]
    language = tasks[0].language if tasks else ""
    with _append(path) as sink:
        for task in tqdm(todo, desc=f"infill {language}", unit="task", disable=not todo):
            infill = infiller.infill(task)
            done[(task.task_id, task.sha)] = infill
            _write_line(sink, {"task_id": task.task_id, "sha": task.sha, **infill.to_json()})
    return {task.task_id: done[(task.task_id, task.sha)] for task in tasks}


def execute_language(
    tasks: Sequence[InfillTask],
    infills: Mapping[str, Infill],
    toolchain: Toolchain,
    path: Path,
    *,
    workers: int,
) -> dict[str, dict[str, Any]]:
    """task_id -> execution record; a program already executed (same text) is not run again."""
    cached = {(record["task_id"], record["sha"]): record for record in _read_jsonl(path)}
    records: dict[str, dict[str, Any]] = {}
    jobs: list[tuple[InfillTask, str, str]] = []
    for task in tasks:
        program = infills[task.task_id].program(task)
        sha = program_sha(program)
        if (task.task_id, sha) in cached:
            records[task.task_id] = cached[(task.task_id, sha)]
        else:
            jobs.append((task, program, sha))
    with (
        _append(path) as sink,
        concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(jobs), desc=f"execute {toolchain.language}", unit="task", disable=not jobs) as bar,
    ):
        futures = {
            pool.submit(run_tests, task, program, toolchain): (task, sha) for task, program, sha in jobs
        }
        try:
            for future in concurrent.futures.as_completed(futures):
                task, sha = futures[future]
                record = _record(task.task_id, 0, sha, future.result())
                _write_line(sink, record)
                records[task.task_id] = record
                bar.update()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return records


def summarize_language(
    language: str,
    tasks: Sequence[InfillTask],
    infills: Mapping[str, Infill],
    records: Mapping[str, Mapping[str, Any]],
    toolchain: Toolchain,
    wall_s: Mapping[str, float],
    kinds: Sequence[str],
) -> dict[str, Any]:
    """One language's entry in results.json (see report's schema)."""
    per_task: dict[str, Any] = {}
    for task in tasks:
        infill = infills[task.task_id]
        record = records[task.task_id]
        per_task[task.task_id] = {
            "kind": task.kind,
            "split": task.split,
            "status": record["status"],
            "exact": exact_match(task, infill.program(task)),
            "mode": infill.mode,
            "editor_mode": task.editor_mode,
            "generate_s": round(infill.seconds, 3),
            "detail": record["detail"],
        }
    return {
        "available": True,
        "reason": "",
        "versions": list(toolchain.versions),
        "notes": list(toolchain.notes),
        "n_tasks": len(tasks),
        "task_set_sha256": task_set_sha(tasks),
        "excluded_problems": {
            f"{_dataset_prefix(tasks, language)}/{number}": why
            for (bad_language, number), why in KNOWN_BAD.items()
            if bad_language == language
        },
        "kinds": report.summarize_kinds(per_task, kinds),
        "wall_s": dict(wall_s),
        "tasks": per_task,
    }


def task_set_sha(tasks: Sequence[InfillTask]) -> str:
    """One digest of the ids and texts of a task list: equal digests, the same tasks."""
    return hashlib.sha256("\n".join(task.sha for task in tasks).encode()).hexdigest()


def _dataset_prefix(tasks: Sequence[InfillTask], language: str) -> str:
    """The dataset's task_id prefix of a language (`Python`, `CPP`, `JavaScript`, ...)."""
    return tasks[0].problem_id.rsplit("/", 1)[0] if tasks else language


def failing_tasks(results: Mapping[str, Any]) -> list[str]:
    return [
        task_id
        for entry in results["languages"].values()
        for task_id, task in entry.get("tasks", {}).items()
        if task["status"] != "passed"
    ]


class _LazyInfiller:
    """Starts the real infiller on the first task; records what it was (or what a past run used)."""

    def __init__(self, make: Callable[[], Infiller], info_path: Path) -> None:
        self._make = make
        self._info_path = info_path
        self._infiller: Infiller | None = None

    @property
    def info(self) -> InfillerInfo:
        return InfillerInfo(**self.info_json())

    def infill(self, task: InfillTask) -> Infill:
        if self._infiller is None:
            self._infiller = self._make()
            self._info_path.write_text(json.dumps(dataclasses.asdict(self._infiller.info), indent=1) + "\n")
        return self._infiller.infill(task)

    def close(self) -> None:
        if self._infiller is not None:
            self._infiller.close()

    def info_json(self) -> dict[str, Any]:
        if self._info_path.exists():
            return json.loads(self._info_path.read_text())
        return dataclasses.asdict(InfillerInfo(name="(nothing generated)", model_hash=""))


def _settings(options: RunOptions) -> dict[str, Any]:
    standard_suite = options.suite == standard.SUITE
    directory = standard.DATA_DIR if standard_suite else data_dir(options.data)
    if standard_suite:
        data_sha = standard.data_sha256(options.kinds)
    else:
        data_sha = {
            language: _sha256(directory / f"humanevalx_{language}.jsonl.gz") for language in options.languages
        }
    return {
        "model": options.model if not options.canonical else "canonical",
        "format": options.format,
        "dtype": options.dtype,
        "threads": options.threads,
        "quant": None if options.canonical or options.peer else quant_label(options.quant),  # not ours to run
        "postprocess": None if options.canonical or options.peer else POSTPROCESS_VERSION,
        "mode": "kind" if options.canonical or options.peer else options.mode,
        "through_lsp": options.through_lsp,
        "max_tokens_line": options.max_tokens_line,
        "max_tokens_block": options.max_tokens_block,
        "canonical": options.canonical,
        "carry_line": options.carry_line and not (options.canonical or options.peer),  # no prompt of ours
        "suite": options.suite,
        "peer": options.peer,
        "peer_request": "llama.vscode fields, greedy, n_predict 128, LINE cut at first newline"
        if options.peer
        else None,
        "split": options.split,
        "samples": dict(options.samples) if standard_suite else None,
        "languages": list(options.languages),
        "kinds": list(options.kinds),
        "per_task": options.per_task,
        "limit": options.limit,
        "seed": options.seed,
        "workers": options.workers,
        "data_dir": str(directory),
        "data_sha256": data_sha,
        "isolation": probe_isolation().note,
    }


def _claim_directory(directory: Path, settings: Mapping[str, Any]) -> None:
    """Create the variant dir, or check that the run already in it used the same settings."""
    path = directory / "settings.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if settings.get("peer") or settings.get("canonical"):
            # Runs before these keys recorded our int4 recipe and no post-processing; neither is theirs.
            previous["quant"] = previous["postprocess"] = None
        changed = [
            key for key in _CACHE_KEYS if previous.get(key, _LEGACY_SETTINGS.get(key)) != settings.get(key)
        ]
        if changed:
            raise InputError(
                f"{directory} holds a run with other settings ({', '.join(changed)}); use another --out"
            )
    for sub in ("tasks", "generations", "executions"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({key: settings[key] for key in _CACHE_KEYS}, indent=1) + "\n")


def _write_tasks(path: Path, tasks: Sequence[InfillTask]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(task.to_json(), ensure_ascii=False) + "\n" for task in tasks)
    path.write_text(lines, encoding="utf-8")


def _split(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _command(argv: Sequence[str]) -> str:
    return shlex.join(["codegeex-lsp", "bench", "infill", *argv])


if __name__ == "__main__":
    sys.exit(main())
