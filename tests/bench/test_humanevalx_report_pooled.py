"""The HumanEval-X report's "all languages" figures: pooled greedy pass@1 and the pooled paired test.

The int4 issue asks for int4 within 1 point of fp *overall*, so the report must pool the six
languages' tasks (ids carry their language, so they never collide) and compare the variants on them.
"""

from __future__ import annotations

from typing import Any

from codegeex_lsp.bench.humaneval_x.report import pooled_outcomes, render_markdown


def _variant(outcomes: dict[str, dict[str, bool]]) -> dict[str, Any]:
    languages = {}
    for language, tasks in outcomes.items():
        languages[language] = {
            "available": True,
            "pass_at_k": {"pass@1": sum(tasks.values()) / len(tasks)},
            "tasks": {task_id: {"n": 1, "c": int(passed)} for task_id, passed in tasks.items()},
        }
    return {"languages": languages, "settings": {}, "model": {}}


def test_all_languages_row_and_pooled_mcnemar() -> None:
    fp = _variant(
        {
            "python": {f"Python/{i}": i < 6 for i in range(10)},
            "java": {f"Java/{i}": i < 4 for i in range(10)},
        }
    )
    int4 = _variant(
        {
            "python": {f"Python/{i}": 1 <= i < 6 for i in range(10)},  # loses Python/0
            "java": {f"Java/{i}": i < 5 for i in range(10)},  # gains Java/4
        }
    )
    assert pooled_outcomes(fp) == {**fp_tasks(fp)}
    text = render_markdown({"fp": fp, "int4": int4})
    row = next(line for line in text.splitlines() if line.startswith("| **All languages**"))
    assert "50.0 [" in row and "n=20" in row  # 10 of 20 both ways
    pooled = next(line for line in text.splitlines() if line.startswith("- **All languages**"))
    assert "1 only fp, 1 only int4, 9 both, 9 neither (n=20)" in pooled
    assert "fp - int4 = +0.0 points" in pooled
    assert "- Python: fp vs int4: 1 only fp, 0 only int4" in text


def test_a_sampled_variant_has_no_pooled_greedy_figure() -> None:
    sampled = _variant({"python": {"Python/0": True}})
    sampled["languages"]["python"]["tasks"]["Python/0"]["n"] = 5
    assert pooled_outcomes(sampled) is None


def fp_tasks(results: dict[str, Any]) -> dict[str, bool]:
    return {
        task_id: bool(task["c"])
        for entry in results["languages"].values()
        for task_id, task in entry["tasks"].items()
    }
