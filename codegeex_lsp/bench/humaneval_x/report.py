"""Benchmark outputs: `results.json` per variant, and one Markdown table + PNG chart per output root.

An output root holds one subdirectory per variant (`canonical`, `fp`, `int4`), each with its own
`results.json`; the report is rebuilt from whatever variants are present, so fp and int4 runs of the
same model land side by side whichever finished last. The published CodeGeeX figures and an optional
model-card figure sit next to ours for scale (they were measured with other sampling settings:
compare shapes, not decimals).

results.json (schema 1): {schema, variant, created, git_commit, model{name, model_hash, quant},
settings{...}, languages{lang: {available, reason, versions, notes, n_tasks, n_samples, pass_at_k,
n_tasks_all_passed, statuses, known_bad{task_id: {why, n, c}}, wall_s{generate, execute} (this
invocation only), sandbox_s_total (summed over all samples, cached ones too), tasks{task_id: {n, c,
pass_at_k, statuses, known_bad, first_failure}}}}}; pass@k values are fractions in [0, 1]. Later
additions: `host` (CPU and SIMD flags) and settings `protocol` (absent: the FIM protocol).

Every greedy pass@1 (one sample per task) carries its 95 % Wilson interval; variants run on the same
tasks are compared per language with the exact McNemar test (fp vs int4, one protocol vs another).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codegeex_lsp.bench.humaneval_x.dataset import LANGUAGES, display_name
from codegeex_lsp.bench.stats import (
    format_difference,
    format_host,
    format_paired,
    format_rate,
    mcnemar,
    wilson_interval,
)

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
CHART_FILE = "pass_at_1.png"
VARIANT_ORDER: tuple[str, ...] = (
    "canonical",
    "fp",
    "int4",
    "llama-gguf",
    "llama-q4_0",
    "fp-fim",
    "int4-fim",
    "fp-instruct",
    "int4-instruct",
    "fp-instruct-qwen",
    "int4-instruct-qwen",
)
PROTOCOL_NOTES: dict[str, str] = {
    "codegeex": "raw prompt continued left to right, CodeGeeX's stop and cleanup rules",
    "fim": "FIM request with the prompt as prefix and an empty suffix, our function-end cut",
    "instruct": "chat template, EvalPlus request, code block extracted and sanitized",
    "instruct-qwen": "Qwen's own harness request and stop strings, reply sanitized as EvalPlus does",
}

PUBLISHED_PASS1: dict[str, dict[str, float]] = {
    "CodeGeeX-13B": {"python": 22.9, "cpp": 17.1, "java": 20.0, "js": 17.6, "go": 14.4, "rust": 4.3},
    "CodeGeeX2-6B": {"python": 35.9, "cpp": 29.3, "java": 30.8, "js": 32.2, "go": 22.5, "rust": 18.1},
}
"""pass@1 in percent, from the dataset's README (CodeGeeX papers; greedy/temperature per paper)."""

Results = dict[str, Any]


def write_results(directory: Path, results: Results) -> Path:
    """Write one variant's results.json (atomically: a reader never sees half a file)."""
    path = directory / RESULTS_FILE
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    scratch.replace(path)
    return path


def load_variants(root: Path) -> dict[str, Results]:
    """Every variant's results under `root`, in report order."""
    found = {path.parent.name: json.loads(path.read_text()) for path in root.glob(f"*/{RESULTS_FILE}")}
    order = {name: index for index, name in enumerate(VARIANT_ORDER)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def write_report(root: Path, model_card: Mapping[str, float] | None = None) -> list[Path]:
    """Rebuild report.md and the chart from the variants under `root`; return the files written."""
    variants = load_variants(root)
    if not variants:
        return []
    report = root / REPORT_FILE
    report.write_text(render_markdown(variants, model_card), encoding="utf-8")
    chart = plot_pass_at_1(variants, model_card, root / CHART_FILE)
    return [report, chart]


def render_markdown(variants: Mapping[str, Results], model_card: Mapping[str, float] | None = None) -> str:
    """A table per report: ours per variant and k, then the published pass@1 and the model card."""
    ks = _ks(variants)
    header = ["Language"]
    header += [f"{variant} pass@{k}" for variant in variants for k in ks]
    header += [f"{name} pass@1" for name in PUBLISHED_PASS1]
    if model_card:
        header.append("model card pass@1")
    rows = [header, ["---"] * len(header)]
    for language in _languages(variants):
        row = [display_name(language)]
        for results in variants.values():
            entry = results["languages"].get(language, {})
            for k in ks:
                row.append(_cell(entry, k))
        row += [f"{PUBLISHED_PASS1[name][language]:.1f}" for name in PUBLISHED_PASS1]
        if model_card:
            row.append(f"{model_card[language]:.1f}" if language in model_card else "")
        rows.append(row)
    if len(_languages(variants)) > 1:
        rows.append(_pooled_row(variants, ks, len(header)))
    lines = [
        "# HumanEval-X",
        "",
        "pass@k in percent (unbiased estimator, Chen et al. 2021); a greedy pass@1 (one sample per task)",
        "carries its 95 % Wilson interval and n. Published figures are CodeGeeX's own, with their",
        "sampling settings; ours are below with each variant's settings and protocol.",
        "",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    lines += _comparisons(variants)
    for variant, results in variants.items():
        lines += _variant_notes(variant, results)
    return "\n".join(lines)


def plot_pass_at_1(
    variants: Mapping[str, Results], model_card: Mapping[str, float] | None, path: Path
) -> Path:
    """Grouped bars: per language, our variants' pass@1 beside the published and model-card figures."""
    import matplotlib

    matplotlib.use("Agg")  # no display on benchmark machines
    import matplotlib.pyplot as plt

    languages = _languages(variants)
    series: dict[str, list[float]] = {}
    for variant, results in variants.items():
        series[f"ours ({variant})"] = [
            100 * results["languages"].get(language, {}).get("pass_at_k", {}).get("pass@1", float("nan"))
            for language in languages
        ]
    for name, figures in PUBLISHED_PASS1.items():
        series[name] = [figures.get(language, float("nan")) for language in languages]
    if model_card:
        series["model card"] = [model_card.get(language, float("nan")) for language in languages]

    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(languages)), 4.0))
    for index, (label, values) in enumerate(series.items()):
        offsets = [position + (index - (len(series) - 1) / 2) * width for position in range(len(languages))]
        axes.bar(offsets, values, width, label=label)
    axes.set_xticks(range(len(languages)), [display_name(language) for language in languages])
    axes.set_ylabel("pass@1 (%)")
    axes.set_ylim(0, 100)
    axes.set_title("HumanEval-X pass@1")
    axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(series), 4))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _protocol(settings: Mapping[str, Any]) -> str:
    if settings.get("canonical"):
        return "canonical solutions (harness check)"
    protocol = settings.get("protocol", "fim")
    recorded = "" if "protocol" in settings else " (recorded before the setting existed)"
    return f"{protocol}: {PROTOCOL_NOTES.get(protocol, '?')}{recorded}"


def _ks(variants: Mapping[str, Results]) -> list[int]:
    keys = {
        key
        for results in variants.values()
        for entry in results["languages"].values()
        for key in entry.get("pass_at_k", {})
    }
    return sorted(int(key.removeprefix("pass@")) for key in keys) or [1]


def _languages(variants: Mapping[str, Results]) -> list[str]:
    present = {language for results in variants.values() for language in results["languages"]}
    return [language for language in LANGUAGES if language in present]


def _cell(entry: Mapping[str, Any], k: int) -> str:
    if not entry:
        return ""
    if not entry.get("available", False):
        return "n/a"
    value = entry.get("pass_at_k", {}).get(f"pass@{k}")
    if value is None:
        return ""
    outcomes = task_outcomes(entry)
    if k == 1 and outcomes is not None:
        low, high = wilson_interval(sum(outcomes.values()), len(outcomes))
        return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}] n={len(outcomes)}"
    return f"{100 * value:.1f}"


def task_outcomes(entry: Mapping[str, Any]) -> dict[str, bool] | None:
    """task id -> passed for a greedy language entry (one sample per task); None when sampled."""
    tasks = entry.get("tasks", {})
    if not tasks or any(task["n"] != 1 for task in tasks.values()):
        return None
    return {task_id: task["c"] == 1 for task_id, task in tasks.items()}


def pooled_outcomes(results: Results) -> dict[str, bool] | None:
    """task id -> passed over every language of a greedy variant (ids carry their language)."""
    pooled: dict[str, bool] = {}
    for entry in results["languages"].values():
        if not entry.get("available", False):
            continue
        outcomes = task_outcomes(entry)
        if outcomes is None:
            return None
        pooled.update(outcomes)
    return pooled or None


def _pooled_row(variants: Mapping[str, Results], ks: list[int], width: int) -> list[str]:
    """All languages together: the issue's "overall" figure, greedy pass@1 with its interval."""
    row = ["**All languages**"]
    for results in variants.values():
        outcomes = pooled_outcomes(results)
        for k in ks:
            if k != 1 or outcomes is None:
                row.append("")
                continue
            row.append(format_rate(sum(outcomes.values()), len(outcomes)))
    return row + [""] * (width - len(row))


def _comparisons(variants: Mapping[str, Results]) -> list[str]:
    """Exact McNemar between every two model variants, per language and over all languages together,
    on the tasks both ran."""
    names = [name for name in variants if name != "canonical"]
    lines: list[str] = []
    if len(_languages(variants)) > 1:
        for index, a in enumerate(names):
            for b in names[index + 1 :]:
                first, second = pooled_outcomes(variants[a]), pooled_outcomes(variants[b])
                if first is not None and second is not None and (paired := mcnemar(first, second)).n:
                    lines.append(
                        f"- **All languages**: {format_paired(paired, a, b)}; {format_difference(paired, a, b)}"
                    )
    for language in _languages(variants):
        for index, a in enumerate(names):
            for b in names[index + 1 :]:
                first = task_outcomes(variants[a]["languages"].get(language, {}))
                second = task_outcomes(variants[b]["languages"].get(language, {}))
                if first is None or second is None:
                    continue
                paired = mcnemar(first, second)
                if paired.n:
                    lines.append(f"- {display_name(language)}: {format_paired(paired, a, b)}")
    if not lines:
        return []
    return ["## Paired comparisons (greedy, same tasks)", "", *lines, ""]


def _variant_notes(variant: str, results: Results) -> list[str]:
    model = results.get("model", {})
    settings = results.get("settings", {})
    lines = [
        f"## {variant}",
        "",
        f"- model: {model.get('name')} (hash {model.get('model_hash')}, quant {model.get('quant')}); "
        f"git {results.get('git_commit')}",
        f"- protocol: {_protocol(settings)}",
        f"- {format_host(results.get('host'))}",
        f"- samples per task n={settings.get('n')}, temperature {settings.get('temperature')}, "
        f"max_tokens {settings.get('max_tokens')}, sandbox: {settings.get('isolation')}",
    ]
    for language, entry in results["languages"].items():
        name = display_name(language)
        if not entry.get("available", False):
            lines.append(f"- {name}: unavailable, skipped ({entry.get('reason')})")
            continue
        statuses = ", ".join(
            f"{count} {status}" for status, count in sorted(entry.get("statuses", {}).items())
        )
        wall = entry.get("wall_s", {})
        lines.append(
            f"- {name}: {entry.get('n_tasks')} tasks, samples {statuses}; "
            f"this invocation: generate {wall.get('generate', 0):.0f} s, execute {wall.get('execute', 0):.0f} s "
            f"(sandbox time summed over all samples {entry.get('sandbox_s_total', 0):.0f} s)"
        )
        for note in entry.get("notes", []):
            lines.append(f"  - note: {note}")
        for task_id, bad in entry.get("known_bad", {}).items():
            lines.append(f"  - known-bad {task_id} ({bad['c']}/{bad['n']} passed): {bad['why']}")
        failing = [
            task_id
            for task_id, task in entry.get("tasks", {}).items()
            if task["c"] < task["n"] and not task.get("known_bad")
        ]
        if failing and variant == "canonical":
            lines.append(f"  - HARNESS PROBLEM, canonical solutions failing: {', '.join(failing)}")
    lines.append("")
    return lines
