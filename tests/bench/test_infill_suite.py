"""HumanEval-Infilling: loading and seeded samples, the benchmark's own program, and a canonical run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x.dataset import Task
from codegeex_lsp.bench.humaneval_x.toolchains import find_toolchain, installed
from codegeex_lsp.bench.infill import run
from codegeex_lsp.bench.infill.infillers import CanonicalInfiller, Infill
from codegeex_lsp.bench.infill.report import REPORT_FILE, RESULTS_FILE
from codegeex_lsp.bench.infill.suite import DATA_DIR, FILES, SUITE, load_rows, load_suite, task_from_row
from codegeex_lsp.bench.infill.tasks import InfillTask, problem_split


def _needs_python() -> None:
    if not installed("python") or not find_toolchain("python").available:
        pytest.skip(f"python toolchain unavailable: {find_toolchain('python').reason}")


def test_the_data_ships_with_its_license_and_has_the_published_sizes() -> None:
    assert "MIT" in (DATA_DIR / "LICENSE").read_text()
    assert {kind: len(load_rows(kind)) for kind in FILES} == {"single": 1033, "multi": 5815, "span": 1640}


def test_default_samples_are_seeded_and_recorded_per_kind() -> None:
    tasks = load_suite(("single", "multi", "span"))
    counts = {kind: sum(t.kind == kind for t in tasks) for kind in FILES}
    assert counts == {"single": 1033, "multi": 1000, "span": 400}
    again = load_suite(("multi",))
    assert [t.task_id for t in again] == [t.task_id for t in tasks if t.kind == "multi"]
    other_seed = load_suite(("multi",), seed=99)
    assert {t.task_id for t in other_seed} != {t.task_id for t in again}
    # A smaller sample (--limit) is part of the larger one, not the first N of the file.
    small = load_suite(("multi",), limit=20)
    assert {t.task_id for t in small} <= {t.task_id for t in again}
    assert [t.task_id for t in small] != [row["task_id"] for row in load_rows("multi")[:20]]
    assert all(t.suite == SUITE and t.language == "python" for t in small)


def test_split_filter_keeps_one_split() -> None:
    heldout = load_suite(("single",), split="heldout")
    assert heldout and {t.split for t in heldout} == {"heldout"}
    assert len(heldout) < 1033
    assert all(t.split == problem_split(t.source.number) for t in heldout)


def test_tasks_are_the_rows_prefix_middle_suffix() -> None:
    row = load_rows("single")[0]
    task = task_from_row("single", row)
    assert (task.prefix, task.middle, task.suffix) == (row["prompt"], row["canonical_solution"], row["suffix"])
    assert task.problem_id == "HumanEval/0" and task.source.number == 0
    assert task.check == f"\n{row['test']}\ncheck({row['entry_point']})"
    assert task.whole_line and task.middle.endswith("\n")


def test_whole_line_holes_take_one_line_and_its_newline() -> None:
    task = task_from_row("single", load_rows("single")[0])
    cursor = len(task.prefix)
    first_line = task.middle.rstrip("\n")
    for text in (first_line, first_line + "\n", first_line + "\n        extra()\n"):
        assert Infill(text, cursor, cursor).program(task) == task.document


def _toy_task(middle: str) -> InfillTask:
    source = Task(task_id="HumanEval/0", language="python", prompt="", canonical_solution="", test="")
    check = "\n\ndef check(candidate):\n    assert candidate() == 1\n\ncheck(f)"
    return InfillTask("Toy/HumanEval/0/L0", "single", source, "def f():\n", middle, "", suite=SUITE, check=check)


def test_the_benchmark_program_passes_fails_and_sees_no_preamble(tmp_path: Path) -> None:
    _needs_python()
    good, wrong = _toy_task("    return 1\n"), _toy_task("    return 2\n")
    # `np` is imported by the HumanEval-X preamble; the benchmark's program never imports it.
    leaky = _toy_task("    return len(np.zeros(1))\n")
    tasks = [good, dataclass_id(wrong, "wrong"), dataclass_id(leaky, "leaky")]
    infills = {t.task_id: CanonicalInfiller().infill(t) for t in tasks}
    records = run.execute_language(tasks, infills, find_toolchain("python"), tmp_path / "x.jsonl", workers=2)
    assert {t: r["status"] for t, r in records.items()} == {
        good.task_id: "passed",
        f"{wrong.task_id}/wrong": "failed",
        f"{leaky.task_id}/leaky": "failed",
    }
    assert "NameError" in records[f"{leaky.task_id}/leaky"]["stderr"]


def dataclass_id(task: InfillTask, tag: str) -> InfillTask:
    import dataclasses

    return dataclasses.replace(task, task_id=f"{task.task_id}/{tag}")


def test_canonical_suite_run_passes_and_reports_splits_intervals_host(tmp_path: Path) -> None:
    _needs_python()
    argv = ["--suite", SUITE, "--canonical", "--limit", "3", "--workers", "2", "--out", str(tmp_path)]
    assert run.main(argv) == 0
    results = json.loads((tmp_path / "canonical" / RESULTS_FILE).read_text())
    assert results["settings"]["suite"] == SUITE
    assert results["settings"]["samples"] == {"single": None, "multi": 1000, "span": 400}
    assert results["settings"]["seed"] == 1234
    assert results["host"]["simd_flags"] is not None and results["host"]["cpu"]
    totals = results["totals"]
    assert {kind: (cell["n"], cell["passed"]) for kind, cell in totals.items()} == {
        "single": (3, 3),
        "multi": (3, 3),
        "span": (3, 3),
    }
    assert sum(part["n"] for part in totals["single"]["splits"].values()) == 3
    assert totals["single"]["ci95"][1] == 1.0
    tasks = results["languages"]["python"]["tasks"]
    assert all(task["split"] in ("tune", "heldout") for task in tasks.values())
    report = (tmp_path / REPORT_FILE).read_text()
    assert "HumanEval-Infilling" in report and "## By split" in report
    assert "| All | single | 3 | 100.0 [43.9, 100.0] | 100.0 |" in report
    assert "Code Llama 7B, PSM | 77.0 | 49.7 | 60.7" in report
    assert "SIMD flags" in report


def test_suite_is_python_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run.main(["--suite", SUITE, "--langs", "java", "--out", str(tmp_path)]) == 2
    assert "Python only" in capsys.readouterr().err
