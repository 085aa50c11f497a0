"""The infilling benchmark: task cutting, scoring by execution, caches, and runs with the tiny model."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x.dataset import LANGUAGES, load_tasks
from codegeex_lsp.bench.humaneval_x.toolchains import find_toolchain, installed
from codegeex_lsp.bench.infill import infillers, run
from codegeex_lsp.bench.infill.infillers import CanonicalInfiller, Infill
from codegeex_lsp.bench.infill.report import CHART_FILE, REPORT_FILE, RESULTS_FILE
from codegeex_lsp.bench.infill.score import exact_match
from codegeex_lsp.bench.infill.tasks import (
    KINDS,
    SPLITS,
    cut_tasks,
    is_target_line,
    problem_split,
    select_tasks,
)
from codegeex_lsp.errors import InputError, ModelError
from codegeex_lsp.postprocess.pipeline import POSTPROCESS_VERSION

FIRST_TASK_IDS = {
    "python": ["Python/110/single/L21", "Python/110/multi/L18-L22", "Python/110/span/L21C13-L21C19"],
    "rust": ["Rust/110/single/L28", "Rust/110/multi/L33-L34", "Rust/110/span/L33C10-L33C16"],
}
"""Pinned: the ids (and so the masks) must not move between runs, machines or Python versions."""

NOT_CODE = "@@ not code @@"
TINY_FLAGS = [
    "--threads",
    "1",
    "--dtype",
    "float32",
    "--quant",
    "none",
    "--max-tokens-line",
    "8",
    "--max-tokens-block",
    "16",
]


def _needs(language: str) -> None:
    if not installed(language) or not find_toolchain(language).available:
        pytest.skip(f"{language} toolchain unavailable: {find_toolchain(language).reason}")


@pytest.mark.parametrize("language", LANGUAGES)
def test_cutting_is_deterministic_and_follows_the_rules(language: str) -> None:
    problems = load_tasks(language)[:6]
    first = select_tasks(problems, seed=7)
    again = select_tasks(problems, seed=7)
    assert [(t.task_id, t.prefix, t.middle, t.suffix) for t in first] == [
        (t.task_id, t.prefix, t.middle, t.suffix) for t in again
    ]
    # A task does not depend on which kinds or limits a run asks for.
    singles_only = select_tasks(problems, kinds=("single",), seed=7, limit=3)
    assert len(singles_only) == 3 and set(singles_only) <= {t for t in first if t.kind == "single"}
    assert [t.task_id for t in select_tasks(problems, seed=8)] != [t.task_id for t in first]

    for task in first:
        problem = task.source
        assert task.document == problem.prompt + problem.canonical_solution
        assert task.prefix.startswith(problem.prompt)  # the hole lies inside the canonical solution
        assert task.middle.strip()
        assert re.fullmatch(rf"{re.escape(problem.task_id)}/{task.kind}/L\d+.*", task.task_id)
        assert task.editor_mode in ("NONE", "LINE", "BLOCK")
        if task.kind in ("single", "multi"):
            line = task.middle.split("\n")[0]
            assert not task.prefix.rsplit("\n", 1)[1].strip()  # cursor after the indentation
            assert task.suffix.startswith("\n") or not task.suffix
            assert is_target_line(language, line)
        if task.kind == "single":
            assert "\n" not in task.middle
        if task.kind == "multi":
            assert task.middle.count("\n") >= 1


def test_problems_are_drawn_across_all_164_with_a_recorded_split() -> None:
    python, java = load_tasks("python"), load_tasks("java")
    drawn = select_tasks(python, kinds=("single",), limit=20)
    numbers = [t.source.number for t in drawn]
    assert numbers != list(range(20)) and max(numbers) > 100  # never the first N
    # The same problems in every language (same seed), and a split that depends on the problem only.
    assert [t.source.number for t in select_tasks(java, kinds=("single",), limit=20)] == numbers
    assert {problem_split(n) for n in numbers} == set(SPLITS)
    assert all(t.split == problem_split(t.source.number) and t.to_json()["split"] == t.split for t in drawn)
    heldout = select_tasks(python, kinds=("single",), limit=20, split="heldout")
    assert len(heldout) == 20 and {t.split for t in heldout} == {"heldout"}
    assert 60 < sum(problem_split(n) == "heldout" for n in range(164)) < 104
    with pytest.raises(ValueError, match="split"):
        select_tasks(python, split="train")


def test_task_ids_are_pinned() -> None:
    for language, ids in FIRST_TASK_IDS.items():
        assert [t.task_id for t in select_tasks(load_tasks(language), limit=1)] == ids


def test_target_lines_skip_blank_brace_and_comment_lines() -> None:
    assert not is_target_line("cpp", "    }")
    assert not is_target_line("rust", "    });")
    assert not is_target_line("go", "   ")
    assert not is_target_line("java", "        // keep the smallest")
    assert not is_target_line("python", "    # the rest")
    assert is_target_line("cpp", "    } else {")
    assert is_target_line("python", "    return x")
    known_bad = next(p for p in load_tasks("rust") if p.known_bad)
    assert cut_tasks(known_bad) == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_canonical_middles_pass_and_a_wrong_one_fails(language: str, tmp_path: Path) -> None:
    _needs(language)
    tasks = select_tasks(load_tasks(language), limit=1)
    assert [t.kind for t in tasks] == list(KINDS)
    wrong = dataclasses.replace(tasks[0], task_id=tasks[0].task_id + "/wrong")
    canonical = CanonicalInfiller()
    infills = {task.task_id: canonical.infill(task) for task in tasks}
    cursor = len(wrong.prefix)
    infills[wrong.task_id] = Infill(NOT_CODE, cursor, cursor)

    records = run.execute_language(
        [*tasks, wrong], infills, find_toolchain(language), tmp_path / "exec.jsonl", workers=2
    )

    assert {t.task_id: records[t.task_id]["status"] for t in tasks} == dict.fromkeys(
        (t.task_id for t in tasks), "passed"
    )
    assert records[wrong.task_id]["status"] == "failed"
    assert all(exact_match(task, infills[task.task_id].program(task)) for task in tasks)


def test_a_plausible_wrong_python_middle_fails(tmp_path: Path) -> None:
    _needs("python")
    [task] = cut_tasks(load_tasks("python")[2], kinds=("single",))
    assert task.middle == "return number % 1.0"
    cursor = len(task.prefix)
    infills = {task.task_id: Infill("return number", cursor, cursor)}
    records = run.execute_language([task], infills, find_toolchain("python"), tmp_path / "x.jsonl", workers=1)
    assert records[task.task_id]["status"] == "failed"


def test_exact_match_ignores_whitespace_and_applies_ranges() -> None:
    [task] = cut_tasks(load_tasks("python")[2], kinds=("single",))
    cursor = len(task.prefix)
    assert exact_match(task, Infill("return  number %  1.0  ", cursor, cursor).program(task))
    assert not exact_match(task, Infill("return number%1.0", cursor, cursor).program(task))
    # A server edit may replace text around the cursor: here the indentation before it.
    indent = len(task.prefix) - len(task.prefix.rstrip(" "))
    replaced = Infill("\treturn number % 1.0", cursor - indent, cursor)
    assert replaced.program(task) == task.prefix[: cursor - indent] + "\treturn number % 1.0" + task.suffix
    assert exact_match(task, replaced.program(task))


def test_runs_resume_without_regenerating_or_reexecuting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs("python")
    options = run.RunOptions(languages=("python",), canonical=True, limit=2, out=tmp_path)
    tasks = {"python": run.cut_language("python", options)}
    first = run.run_benchmark(options, tasks, CanonicalInfiller)

    def never():
        raise AssertionError("everything is cached: no infiller may start")

    monkeypatch.setattr(run, "run_tests", lambda *args: pytest.fail("executed a cached program"))
    second = run.run_benchmark(options, tasks, never)
    assert second["languages"]["python"]["tasks"] == first["languages"]["python"]["tasks"]
    single = second["totals"]["single"]
    assert {key: single[key] for key in ("n", "passed", "pass_at_1", "exact_match")} == {
        "n": 2,
        "passed": 2,
        "pass_at_1": 1.0,
        "exact_match": 1.0,
    }
    assert sum(part["n"] for part in single["splits"].values()) == 2


def test_bad_flag_combinations_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--langs", "python", "--limit", "1", "--out", str(tmp_path)]
    assert run.main([*base, "--peer", "llama-server", "--through-lsp"]) == 2
    assert "runs the peer alone" in capsys.readouterr().err
    assert run.main([*base, "--through-lsp", "--mode", "kind"]) == 2
    assert run.main([*base, "--kinds", "single,paragraph"]) == 2
    assert run.main([*base, "--limit", "0"]) == 2
    assert "--limit must be positive" in capsys.readouterr().err


def test_no_carry_line_is_its_own_variant_and_setting(tmp_path: Path) -> None:
    args = ["--langs", "python", "--out", str(tmp_path)]
    on = run.options_from_args(run.build_parser().parse_args(args))
    off = run.options_from_args(run.build_parser().parse_args([*args, "--no-carry-line"]))
    assert (on.variant, off.variant) == ("int4", "int4-nocarry")  # int4: the default, what users run
    assert on.settings["context"] == {"carryLine": True} and off.settings["context"] == {"carryLine": False}
    assert run._settings(off)["carry_line"] is False
    # A variant dir recorded before the setting existed holds runs that did not carry the line.
    (tmp_path / "old").mkdir()
    legacy = {key: value for key, value in run._settings(off).items() if key in run._CACHE_KEYS}
    del legacy["carry_line"]
    (tmp_path / "old" / "settings.json").write_text(json.dumps(legacy))
    run._claim_directory(tmp_path / "old", run._settings(off))
    with pytest.raises(InputError, match="carry_line"):
        run._claim_directory(tmp_path / "old", run._settings(on))


def test_int4_without_quantized_layers_is_an_error() -> None:
    class Linear:
        pass

    class Loaded:
        name = "tiny"
        model = type("Model", (), {"modules": lambda self: iter([Linear()])})()

    service = type("Service", (), {"loaded": Loaded()})()
    with pytest.raises(ModelError, match="--quant int4"):
        infillers._check_quantized(service, "int4")


def test_tiny_model_direct_and_through_lsp(tiny_glm_dir: Path, tmp_path: Path) -> None:
    _needs("python")
    base = ["--langs", "python", "--limit", "1", "--workers", "2", "--out", str(tmp_path), *TINY_FLAGS]
    model = ["--model", str(tiny_glm_dir)]
    assert run.main([*base, *model]) == 0
    assert run.main([*base, *model, "--through-lsp"]) == 0
    assert run.main([*base, *model, "--mode", "context"]) == 0

    results = {v: json.loads((tmp_path / v / RESULTS_FILE).read_text()) for v in ("fp", "fp-lsp", "fp-ctx")}
    for variant, result in results.items():
        python = result["languages"]["python"]
        assert python["n_tasks"] == 3, variant
        assert set(python["kinds"]) == set(KINDS)
        assert result["model"]["name"] == str(tiny_glm_dir)
    sha = {v: r["languages"]["python"]["task_set_sha256"] for v, r in results.items()}
    assert len(set(sha.values())) == 1
    tasks_files = {v: (tmp_path / v / "tasks" / "python.jsonl").read_text() for v in results}
    assert tasks_files["fp"] == tasks_files["fp-lsp"] == tasks_files["fp-ctx"]
    for name in ("settings.json", "model.json", "generations/python.jsonl", "executions/python.jsonl"):
        assert (tmp_path / "fp-lsp" / name).exists(), name
    assert (tmp_path / "fp-lsp" / "server.log").exists()

    # In the context stage's mode the direct path is the server's request path: the same texts.
    def texts(variant: str) -> dict[str, str]:
        path = tmp_path / variant / "generations" / "python.jsonl"
        return {r["task_id"]: r["text"] for r in map(json.loads, path.read_text().splitlines())}

    assert texts("fp-ctx") == texts("fp-lsp")

    report = (tmp_path / REPORT_FILE).read_text()
    assert (
        "| Language | Kind | Tasks | fp pass@1 | fp EM | fp-ctx pass@1 | fp-ctx EM | fp-lsp pass@1 |"
        in report
    )
    assert "| Python | single | 1 |" in report and "| All | span | 1 |" in report
    assert (tmp_path / CHART_FILE).read_bytes().startswith(b"\x89PNG")


def test_a_peer_run_does_not_record_or_check_our_int4_recipe(tmp_path: Path) -> None:
    """A new int4 recipe must not orphan the peer's generations: the peer never runs our weights."""
    args = ["--suite", "humaneval-infilling", "--out", str(tmp_path)]
    peer = run.options_from_args(run.build_parser().parse_args([*args, "--peer", "llama-server"]))
    ours = run.options_from_args(run.build_parser().parse_args(args))
    assert run._settings(peer)["quant"] is None
    assert run._settings(ours)["quant"].startswith("int4 (")
    # A peer dir written before this fix recorded the recipe of its day; it is still the same run.
    (tmp_path / "old").mkdir()
    old = {key: value for key, value in run._settings(peer).items() if key in run._CACHE_KEYS}
    old["quant"] = "int4 (some-older-recipe)"
    (tmp_path / "old" / "settings.json").write_text(json.dumps(old))
    run._claim_directory(tmp_path / "old", run._settings(peer))
    assert json.loads((tmp_path / "old" / "settings.json").read_text())["quant"] is None
    # Our own runs still refuse to mix recipes.
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "settings.json").write_text(json.dumps(old | {"peer": None}))
    with pytest.raises(InputError, match="quant"):
        run._claim_directory(tmp_path / "ours", run._settings(ours))


def test_generations_of_another_post_processing_version_are_not_reused(tmp_path: Path) -> None:
    args = ["--suite", "humaneval-infilling", "--out", str(tmp_path)]
    ours = run.options_from_args(run.build_parser().parse_args(args))
    assert run._settings(ours)["postprocess"] == POSTPROCESS_VERSION
    (tmp_path / "v1").mkdir()
    v1 = {key: value for key, value in run._settings(ours).items() if key in run._CACHE_KEYS}
    del v1["postprocess"]  # recorded before the key existed: version 1
    (tmp_path / "v1" / "settings.json").write_text(json.dumps(v1))
    with pytest.raises(InputError, match="postprocess"):
        run._claim_directory(tmp_path / "v1", run._settings(ours))


def test_a_served_model_is_recorded_with_the_servers_quant_label() -> None:
    from codegeex_lsp.bench.infill.lsp import served_info

    status = {"model": "qwen2.5-coder-0.5b", "quant": "int4 (recipe-v2)", "format": "qwen2.5-coder"}
    info = served_info(status)
    assert (info.name, info.quant, info.format) == ("qwen2.5-coder-0.5b", "int4 (recipe-v2)", "qwen2.5-coder")
