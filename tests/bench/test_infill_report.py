"""The infill report's statistics: intervals per cell, the split table, paired tests, a missing peer."""

from __future__ import annotations

from codegeex_lsp.bench.infill import report


def _results(variant: str, passed: dict[str, bool]) -> dict:
    tasks = {
        task_id: {
            "kind": "single",
            "split": "heldout" if task_id.split("/")[1] in ("0", "1") else "tune",
            "status": "passed" if ok else "failed",
            "exact": ok,
            "mode": "LINE",
            "editor_mode": "LINE",
            "generate_s": 0.1,
            "detail": "",
        }
        for task_id, ok in passed.items()
    }
    kinds = report.summarize_kinds(tasks, ["single"])
    languages = {"python": {"available": True, "kinds": kinds, "tasks": tasks}}
    return {
        "benchmark": "infill",
        "variant": variant,
        "settings": {"kinds": ["single"], "suite": "humanevalx", "split": "all"},
        "languages": languages,
        "totals": report.totals(languages, ["single"]),
    }


def test_cells_splits_and_paired_test() -> None:
    ids = [f"Python/{i}/single/L1" for i in range(8)]
    fp = _results("fp", {t: i < 6 for i, t in enumerate(ids)})  # 6/8
    int4 = _results("int4", {t: i < 2 for i, t in enumerate(ids)})  # 2/8, all 4 discordant favour fp
    text = report.render_markdown({"fp": fp, "int4": int4})
    assert "| Python | single | 8 | 75.0 [40.9, 92.9] | 75.0 | 25.0 [7.1, 59.1] | 25.0 |" in text
    assert "| single | heldout | 100.0 [34.2, 100.0] (2) | 100.0 [34.2, 100.0] (2) |" in text
    assert "| single | tune | 66.7 [30.0, 90.3] (6) | 0.0 [0.0, 39.0] (6) |" in text
    assert "single: fp vs int4: 4 only fp, 0 only int4, 2 both, 2 neither (n=8), exact McNemar p=0.125" in text
    # the paired difference: +4/8 = +50 points, Wald half-width 1.96 * sqrt(4 - 16/8) / 8 = 34.6
    assert "fp - int4 = +50.0 points [+15.4, +84.6]" in text
    assert "Split of these rows: all problems" in text


def test_a_missing_peer_is_reported_beside_the_others() -> None:
    ids = [f"Python/{i}/single/L1" for i in range(2)]
    missing = {"benchmark": "infill", "variant": "peer-llama-server", "missing": "no binary", "languages": {}}
    text = report.render_markdown({"fp": _results("fp", dict.fromkeys(ids, True)), "peer-llama-server": missing})
    assert "- peer missing: no binary" in text
    assert "peer-llama-server pass@1" not in text
