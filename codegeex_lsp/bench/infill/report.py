"""Infilling outputs: `results.json` per variant; one Markdown table and one PNG chart per output root.

An output root holds a directory per variant (`canonical`, `fp`, `int4`, with `-ctx` for the direct
path in `--mode context`, `-lsp` for `--through-lsp`, then `-nocarry` for `--no-carry-line`); the report is rebuilt from every variant
present, so a direct and a served run of the same tasks land side by side.

results.json (schema 1): {schema, benchmark: "infill", variant, created, git_commit, command,
model{name, model_hash, quant, format}, settings{...}, languages{lang: {available, reason, versions,
notes, n_tasks, task_set_sha256, excluded_problems, kinds{kind: {n, passed, pass_at_1, exact_match,
statuses, modes, editor_modes, generate_s_mean}}, wall_s{generate, execute} (this invocation only),
tasks{task_id: {kind, status, exact, mode, editor_mode, generate_s, detail}}}}, totals{kind: {n,
passed, pass_at_1, exact_match}}}; pass_at_1 and exact_match are fractions in [0, 1]. Later
additions: `host` (CPU and SIMD flags), per task `split`, per kind cell `ci95` and `splits{split: {n,
passed, pass_at_1, ci95}}`, settings `suite`/`split`/`samples`/`peer`, and `missing` (a peer that
could not run). Every pass@1 in the Markdown carries its 95 % Wilson interval and n; variants run
on the same tasks are compared pairwise with the exact McNemar test.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codegeex_lsp.bench.humaneval_x.dataset import LANGUAGES, display_name
from codegeex_lsp.bench.infill.suite import PUBLISHED, SUITE
from codegeex_lsp.bench.infill.tasks import KIND_MODES, KINDS, SPLITS
from codegeex_lsp.bench.stats import format_difference, format_host, format_paired, mcnemar, wilson_interval

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
REPORT_FILE = "infill_report.md"  # not report.md: `bench humanevalx` writes that
CHART_FILE = "infill_pass_at_1.png"
VARIANT_ORDER: tuple[str, ...] = (
    "canonical",
    *(
        f"{base}{carry}"
        for base in ("fp", "fp-ctx", "fp-lsp", "int4", "int4-ctx", "int4-lsp")
        for carry in ("", "-nocarry")
    ),
    "peer-llama-server",
)

Results = dict[str, Any]


def write_results(directory: Path, results: Results) -> Path:
    """Write one variant's results.json atomically."""
    path = directory / RESULTS_FILE
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    scratch.replace(path)
    return path


def load_variants(root: Path) -> dict[str, Results]:
    """Every infill variant's results under `root`, in report order."""
    found = {}
    for path in root.glob(f"*/{RESULTS_FILE}"):
        results = json.loads(path.read_text(encoding="utf-8"))
        if results.get("benchmark") == "infill":
            found[path.parent.name] = results
    order = {name: index for index, name in enumerate(VARIANT_ORDER)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def write_report(root: Path) -> list[Path]:
    """Rebuild infill_report.md and the chart from the variants under `root`; return the files written."""
    variants = load_variants(root)
    if not variants:
        return []
    report = root / REPORT_FILE
    report.write_text(render_markdown(variants), encoding="utf-8")
    return [report, plot_pass_at_1(variants, root / CHART_FILE)]


def render_markdown(variants: Mapping[str, Results]) -> str:
    """One row per language and mask kind (then all languages), pass@1 and exact match per variant;
    then all languages by split, the pairwise tests, the published rows and each variant's notes."""
    missing = {name: results for name, results in variants.items() if results.get("missing")}
    variants = {name: results for name, results in variants.items() if not results.get("missing")}
    if not variants:
        return "\n".join(f"- {name}: peer missing: {r['missing']}" for name, r in missing.items()) + "\n"
    header = ["Language", "Kind", "Tasks"]
    for variant in variants:
        header += [f"{variant} pass@1", f"{variant} EM"]
    rows = [header, ["---"] * len(header)]
    languages = _languages(variants)
    kinds = _kinds(variants)
    for language in [*languages, "all"]:
        for kind in kinds:
            cells = [_entry(results, language, kind) for results in variants.values()]
            counts = [cell["n"] for cell in cells if cell and cell.get("n")]
            if not counts and not any(cell is None for cell in cells):
                continue
            n = counts[0] if counts else 0
            row = ["All" if language == "all" else display_name(language), kind, str(n)]
            for cell in cells:
                row += _cells(cell, n)
            rows.append(row)
    first = next(iter(variants.values()))
    standard_suite = first.get("settings", {}).get("suite") == SUITE
    lines = [
        "# Infilling (HumanEval-Infilling, the standard Python benchmark)"
        if standard_suite
        else "# Infilling (HumanEval-X canonical solutions, masked)",
        "",
        "pass@1: percent of tasks whose hidden tests pass with the model's middle inserted (greedy, one",
        "sample), with its 95 % Wilson interval in brackets. EM: percent whose document equals the",
        "original up to whitespace. "
        + (
            "Kinds: `single` one whole line, `multi` a block of lines, `span` a random character span; "
            "scored with the benchmark's own program (`codegeex_lsp/bench/infill/suite.py`)."
            if standard_suite
            else "Kinds: `single` one line, `multi` 2-8 lines, `span` a random character span "
            "(see `codegeex_lsp/bench/infill/tasks.py`)."
        ),
        f"Split of these rows: {_split_label(first)}.",
        "",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    lines += _split_table(variants, kinds)
    lines += _comparisons(variants, kinds)
    if standard_suite:
        lines += _published(kinds)
    for name, results in missing.items():
        lines += [f"## {name}", "", f"- peer missing: {results['missing']}", ""]
    lines += _task_notes(first)
    for variant, results in variants.items():
        lines += _variant_notes(variant, results)
    return "\n".join(lines)


def plot_pass_at_1(variants: Mapping[str, Results], path: Path) -> Path:
    """One panel per mask kind, stacked: per language (and all), each variant's pass@1."""
    import matplotlib

    matplotlib.use("Agg")  # no display on benchmark machines
    import matplotlib.pyplot as plt

    languages = [*_languages(variants), "all"]
    kinds = _kinds(variants) or list(KINDS)
    labels = ["All" if language == "all" else display_name(language) for language in languages]
    figure, axes_grid = plt.subplots(
        len(kinds), 1, figsize=(max(6.0, 1.2 * len(languages)), 2.6 * len(kinds)), squeeze=False
    )
    width = 0.8 / max(len(variants), 1)
    for axes, kind in zip(axes_grid[:, 0], kinds, strict=True):
        for index, (variant, results) in enumerate(variants.items()):
            values = []
            for language in languages:
                cell = _entry(results, language, kind)
                values.append(100 * cell["pass_at_1"] if cell and cell.get("n") else math.nan)
            offsets = [p + (index - (len(variants) - 1) / 2) * width for p in range(len(languages))]
            axes.bar(offsets, values, width, label=variant)
        axes.set_xticks(range(len(languages)), labels, fontsize="small")
        axes.set_ylim(0, 100)
        axes.set_title(f"{kind} ({KIND_MODES.get(kind, '')} by kind)")
        axes.set_ylabel("pass@1 (%)")
    axes_grid[0, 0].legend(fontsize="small", ncol=min(len(variants), 4))
    figure.suptitle("HumanEval-X infilling pass@1")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _entry(results: Results, language: str, kind: str) -> dict[str, Any] | None:
    """A variant's figures for one language (or "all") and kind; None where the language was skipped."""
    if language == "all":
        return results.get("totals", {}).get(kind, {})
    entry = results["languages"].get(language)
    if entry is None:
        return {}
    if not entry.get("available", False):
        return None
    return entry.get("kinds", {}).get(kind, {})


def _cells(cell: Mapping[str, Any] | None, n: int) -> list[str]:
    if cell is None:
        return ["n/a", "n/a"]
    if not cell.get("n"):
        return ["", ""]
    other = f" (n={cell['n']})" if cell["n"] != n else ""
    return [f"{_rate(cell['passed'], cell['n'])}{other}", f"{100 * cell['exact_match']:.1f}"]


def _rate(passed: int, n: int) -> str:
    low, high = wilson_interval(passed, n)
    return f"{100 * passed / n:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def _split_label(results: Results) -> str:
    split = results.get("settings", {}).get("split", "all")
    if split == "all":
        return "all problems (tune + heldout; per split below)"
    return f"{split} only"


def _split_table(variants: Mapping[str, Results], kinds: Sequence[str]) -> list[str]:
    """All languages, per kind and split: which number is tuned-on and which is held out."""
    header = ["Kind", "Split", *(f"{variant} pass@1 (n)" for variant in variants)]
    rows = [header, ["---"] * len(header)]
    for kind in kinds:
        for split in SPLITS:
            cells = []
            for results in variants.values():
                cell = results.get("totals", {}).get(kind, {}).get("splits", {}).get(split)
                cells.append(
                    f"{_rate(cell['passed'], cell['n'])} ({cell['n']})" if cell and cell["n"] else ""
                )
            if any(cells):
                rows.append([kind, split, *cells])
    if len(rows) == 2:
        return []
    return [
        "## By split (all languages)",
        "",
        "`heldout` problems are never used to choose a recipe, filter or setting; `tune` ones may be.",
        "",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def task_outcomes(results: Results, kind: str, split: str | None = None) -> dict[str, bool]:
    """task id -> passed, for one kind (and split) over every available language."""
    return {
        task_id: task["status"] == "passed"
        for entry in results["languages"].values()
        if entry.get("available")
        for task_id, task in entry.get("tasks", {}).items()
        if task["kind"] == kind and (split is None or task.get("split") == split)
    }


def _comparisons(variants: Mapping[str, Results], kinds: Sequence[str]) -> list[str]:
    """Exact McNemar between every two model variants, per kind, on the tasks both ran."""
    names = [name for name in variants if name != "canonical"]
    lines: list[str] = []
    for kind in kinds:
        for index, a in enumerate(names):
            for b in names[index + 1 :]:
                paired = mcnemar(task_outcomes(variants[a], kind), task_outcomes(variants[b], kind))
                if paired.n:
                    lines.append(f"- {kind}: {format_paired(paired, a, b)}; {format_difference(paired, a, b)}")
    if not lines:
        return []
    return ["## Paired comparisons (all languages, all splits)", "", *lines, ""]


def _published(kinds: Sequence[str]) -> list[str]:
    header = ["Published model", *kinds]
    rows = [header, ["---"] * len(header)]
    for model, figures in PUBLISHED.items():
        rows.append([model, *(f"{figures[kind]:.1f}" if kind in figures else "—" for kind in kinds)])
    return [
        "## Published pass@1 on this data (for scale; larger models, their own prompts)",
        "",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def _languages(variants: Mapping[str, Results]) -> list[str]:
    present = {language for results in variants.values() for language in results["languages"]}
    return [language for language in LANGUAGES if language in present]


def _kinds(variants: Mapping[str, Results]) -> list[str]:
    present = {kind for results in variants.values() for kind in results.get("settings", {}).get("kinds", [])}
    return [kind for kind in KINDS if kind in present]


def _task_notes(results: Results) -> list[str]:
    settings = results.get("settings", {})
    lines = [
        "## Tasks",
        "",
        (
            f"- HumanEval-Infilling, seed {settings.get('seed')}: seeded samples per kind "
            f"{settings.get('samples')} (None: every task), limit {settings.get('limit')}; split "
            f"{settings.get('split', 'all')}"
            if settings.get("suite") == SUITE
            else f"- seed {settings.get('seed')}, {settings.get('per_task')} mask(s) per kind and problem "
            f"drawn across all problems, limit {settings.get('limit')} per language and kind, split "
            f"{settings.get('split', 'all')}; known-bad problems excluded"
        ),
        "- the context stage's mode at each cursor (what an editor gets; NONE = mid-line, answered "
        "when invoked as BLOCK at a line's indentation, else LINE):",
    ]
    for language, entry in results["languages"].items():
        if not entry.get("available", False):
            continue
        parts = []
        for kind, cell in entry.get("kinds", {}).items():
            modes = ", ".join(
                f"{mode} {count}" for mode, count in sorted(cell.get("editor_modes", {}).items())
            )
            parts.append(f"{kind}: {modes}")
        lines.append(f"  - {display_name(language)}: {'; '.join(parts)}")
    lines.append("")
    return lines


def _variant_notes(variant: str, results: Results) -> list[str]:
    model = results.get("model", {})
    settings = results.get("settings", {})
    lines = [
        f"## {variant}",
        "",
        f"- command: `{results.get('command', '')}`",
        f"- model: {model.get('name')} (format {model.get('format') or '-'}, hash {model.get('model_hash')}, "
        f"quant {model.get('quant')}); git {results.get('git_commit')}",
        f"- {format_host(results.get('host'))}",
        f"- path: {_path(settings)}; mode by {settings.get('mode')}; max tokens LINE "
        f"{settings.get('max_tokens_line')}, BLOCK {settings.get('max_tokens_block')}; "
        f"cursor line carried after the middle token: {_carry(settings)}; "
        f"sandbox: {settings.get('isolation')}",
    ]
    failing: list[str] = []
    for language, entry in results["languages"].items():
        name = display_name(language)
        if not entry.get("available", False):
            lines.append(f"- {name}: unavailable, skipped ({entry.get('reason')})")
            continue
        wall = entry.get("wall_s", {})
        per_kind = "; ".join(
            f"{kind} {_statuses(cell)}, {cell.get('generate_s_mean', 0):.2f} s/task"
            for kind, cell in entry.get("kinds", {}).items()
        )
        lines.append(
            f"- {name}: {per_kind}; this invocation: generate {wall.get('generate', 0):.0f} s, "
            f"execute {wall.get('execute', 0):.0f} s"
        )
        for note in entry.get("notes", []):
            lines.append(f"  - note: {note}")
        failing += [tid for tid, task in entry.get("tasks", {}).items() if task["status"] != "passed"]
    if variant == "canonical" and failing:
        lines.append(f"- HARNESS PROBLEM, canonical middles failing: {', '.join(failing)}")
    lines.append("")
    return lines


def _path(settings: Mapping[str, Any]) -> str:
    if settings.get("canonical"):
        return "canonical middles (harness check)"
    if settings.get("peer"):
        return f"peer {settings.get('peer')}: {settings.get('peer_request')}"
    if settings.get("through_lsp"):
        return "codegeex-lsp serve, textDocument/inlineCompletion (invoked)"
    return "CompletionService in process, the server's request path"


def _carry(settings: Mapping[str, Any]) -> str:
    """Runs recorded before the setting existed did not carry the line."""
    return "yes" if settings.get("carry_line", False) else "no"


def _statuses(cell: Mapping[str, Any]) -> str:
    return ", ".join(f"{count} {status}" for status, count in sorted(cell.get("statuses", {}).items()))


def summarize_kinds(tasks: Mapping[str, Mapping[str, Any]], kinds: Sequence[str]) -> dict[str, Any]:
    """Per kind: counts, pass@1, exact match and mode histograms from per-task records."""
    summary: dict[str, Any] = {}
    for kind in kinds:
        records = [task for task in tasks.values() if task["kind"] == kind]
        n = len(records)
        passed = sum(task["status"] == "passed" for task in records)
        summary[kind] = {
            "n": n,
            "passed": passed,
            "pass_at_1": passed / n if n else 0.0,
            "ci95": wilson_interval(passed, n),
            "splits": _by_split(records),
            "exact_match": sum(task["exact"] for task in records) / n if n else 0.0,
            "statuses": _count(task["status"] for task in records),
            "modes": _count(task["mode"] for task in records),
            "editor_modes": _count(task["editor_mode"] for task in records),
            "generate_s_mean": sum(task["generate_s"] for task in records) / n if n else 0.0,
        }
    return summary


def totals(languages: Mapping[str, Mapping[str, Any]], kinds: Sequence[str]) -> dict[str, Any]:
    """Per kind over all available languages (task-weighted)."""
    out: dict[str, Any] = {}
    for kind in kinds:
        cells = [entry["kinds"][kind] for entry in languages.values() if entry.get("available")]
        n = sum(cell["n"] for cell in cells)
        passed = sum(cell["passed"] for cell in cells)
        exact = sum(cell["exact_match"] * cell["n"] for cell in cells)
        splits: dict[str, dict[str, Any]] = {}
        for cell in cells:
            for split, part in cell.get("splits", {}).items():
                merged = splits.setdefault(split, {"n": 0, "passed": 0})
                merged["n"] += part["n"]
                merged["passed"] += part["passed"]
        for merged in splits.values():
            merged["pass_at_1"] = merged["passed"] / merged["n"] if merged["n"] else 0.0
            merged["ci95"] = wilson_interval(merged["passed"], merged["n"])
        out[kind] = {
            "n": n,
            "passed": passed,
            "pass_at_1": passed / n if n else 0.0,
            "exact_match": exact / n if n else 0.0,
            "ci95": wilson_interval(passed, n),
            "splits": dict(sorted(splits.items())),
        }
    return out


def _by_split(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        chosen = [task for task in records if task.get("split") == split]
        if chosen:
            passed = sum(task["status"] == "passed" for task in chosen)
            out[split] = {
                "n": len(chosen),
                "passed": passed,
                "pass_at_1": passed / len(chosen),
                "ci95": wilson_interval(passed, len(chosen)),
            }
    return out


def _count(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))
