"""HumanEval-Infilling (Bavarian et al. 2022) as `InfillTask`s, scored with the benchmark's own program.

The files ship in the package (`bench/data/humaneval_infilling`, MIT, unchanged). Each row is one
hole: `prompt` (text before it), `canonical_solution` (the hole), `suffix`, `test`, `entry_point`;
the program that decides a pass is `prompt + middle + suffix + "\\n" + test + "\\n" + check(entry_point)`
in the HumanEval-X Python sandbox, in a module namespace of its own (`score.run_tests`).

Single-line holes are whole lines with their newline (the README's rule), so every infiller's
answer is cut at its first newline and ends with one (`Infill.program`), the same for ours and the
peer. Which holes run: all 1,033 single-line ones; multi-line and random-span are seeded samples
(`DEFAULT_SAMPLES`), drawn as a seeded permutation so a smaller sample is a prefix of a larger one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from codegeex_lsp.bench.humaneval_x.dataset import Task, package_data
from codegeex_lsp.bench.infill.tasks import (
    DEFAULT_SEED,
    SPLIT_CHOICES,
    InfillTask,
    editor_context,
    problem_split,
)

SUITE = "humaneval-infilling"
DATA_DIR = package_data("humaneval_infilling")
FILES: dict[str, str] = {
    "single": "HumanEval-SingleLineInfilling.jsonl.gz",
    "multi": "HumanEval-MultiLineInfilling.jsonl.gz",
    "span": "HumanEval-RandomSpanInfilling.jsonl.gz",
}
DEFAULT_SAMPLES: dict[str, int | None] = {"single": None, "multi": 1000, "span": 400}
"""Tasks per kind (None: all). Multi-line has 5,815 holes and random span 1,640."""

PUBLISHED: dict[str, dict[str, float]] = {
    "Code Llama 7B, PSM": {"single": 77.0, "multi": 49.7, "span": 60.7},
    "Code Llama 7B, SPM": {"single": 83.3, "multi": 51.2, "span": 39.6},
    "Code Llama 13B, PSM": {"single": 80.7, "multi": 53.7, "span": 64.3},
    "InCoder 6B (T=0.2)": {"single": 69.0, "multi": 38.6},
    "FIM90 7B (SPM, T=0.1)": {"single": 75.1, "multi": 44.1, "span": 55.1},
}
"""pass@1 in percent from the data's README (Code Llama paper, Table 14); no Qwen2.5-Coder-0.5B row exists."""


def load_rows(kind: str, directory: Path | None = None) -> list[dict[str, str]]:
    """The rows of one kind's file, in file order."""
    path = (directory or DATA_DIR) / FILES[kind]
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def sample_rows(
    rows: Sequence[Mapping[str, str]], size: int | None, seed: int = DEFAULT_SEED
) -> list[Mapping[str, str]]:
    """`size` rows (all when None or larger) in a seeded order by task id, returned in file order."""
    if size is None or size >= len(rows):
        return list(rows)
    ranked = sorted(
        range(len(rows)),
        key=lambda i: hashlib.sha256(f"{seed}:{rows[i]['task_id']}".encode()).digest(),
    )
    return [rows[i] for i in sorted(ranked[:size])]


def task_from_row(kind: str, row: Mapping[str, str]) -> InfillTask:
    """One hole as an `InfillTask` on a Python document (`HumanEval/<n>` is the problem)."""
    problem_id = "/".join(row["task_id"].split("/")[1:3])  # SingleLineInfilling/HumanEval/0/L0
    prefix, middle, suffix = row["prompt"], row["canonical_solution"], row["suffix"]
    source = Task(
        task_id=problem_id,
        language="python",
        prompt="",
        canonical_solution=prefix + middle + suffix,
        test=row["test"],
    )
    mode, reason = editor_context(prefix + suffix, len(prefix), "python")
    return InfillTask(
        task_id=row["task_id"],
        kind=kind,
        source=source,
        prefix=prefix,
        middle=middle,
        suffix=suffix,
        editor_mode=mode,
        editor_reason=reason,
        suite=SUITE,
        check=f"\n{row['test']}\ncheck({row['entry_point']})",
        whole_line=kind == "single",
    )


def load_suite(
    kinds: Sequence[str],
    samples: Mapping[str, int | None] | None = None,
    seed: int = DEFAULT_SEED,
    limit: int | None = None,
    split: str = "all",
    directory: Path | None = None,
) -> list[InfillTask]:
    """The tasks of the asked kinds: the seeded sample of each, of one split (or all), at most
    `limit` per kind (a smaller seeded sample, never the first N)."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLIT_CHOICES)}")
    sizes = {**DEFAULT_SAMPLES, **(samples or {})}
    tasks: list[InfillTask] = []
    for kind in kinds:
        rows = load_rows(kind, directory)
        if split != "all":
            rows = [row for row in rows if problem_split(_number(row)) == split]
        size = sizes.get(kind)
        if limit is not None:
            size = limit if size is None else min(size, limit)
        tasks += [task_from_row(kind, row) for row in sample_rows(rows, size, seed)]
    return tasks


def data_sha256(kinds: Sequence[str], directory: Path | None = None) -> dict[str, str]:
    return {
        kind: hashlib.sha256(((directory or DATA_DIR) / FILES[kind]).read_bytes()).hexdigest()
        for kind in kinds
    }


def _number(row: Mapping[str, str]) -> int:
    return int(row["task_id"].split("/")[2])
