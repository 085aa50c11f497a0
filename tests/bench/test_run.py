"""The driver: resumable generation/execution caches, the report files, and `main` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x import run
from codegeex_lsp.bench.humaneval_x.dataset import load_tasks
from codegeex_lsp.bench.humaneval_x.generator import CanonicalGenerator, Generator
from codegeex_lsp.bench.humaneval_x.report import CHART_FILE, REPORT_FILE, write_report, write_results
from codegeex_lsp.bench.humaneval_x.sandbox import SandboxResult
from codegeex_lsp.bench.humaneval_x.toolchains import Toolchain


class CountingGenerator:
    """Canonical answers, counting the prompts it was asked for."""

    def __init__(self, tasks: list) -> None:
        self._canonical = CanonicalGenerator(tasks)
        self.asked: list[str] = []

    def generate(
        self, prompt: str, language: str, *, n: int, temperature: float, max_tokens: int
    ) -> list[str]:
        self.asked.append(prompt)
        return self._canonical.generate(prompt, language, n=n, temperature=temperature, max_tokens=max_tokens)


def test_generation_resumes_from_a_partial_jsonl(tmp_path: Path) -> None:
    tasks = load_tasks("python")[:4]
    path = tmp_path / "python.jsonl"
    done = [{"task_id": task.task_id, "completions": ["    pass\n"]} for task in tasks[:2]]
    torn = '{"task_id": "Python/2", "compl'  # the run was killed mid-write
    path.write_text("".join(json.dumps(record) + "\n" for record in done) + torn)

    generator = CountingGenerator(tasks)
    assert isinstance(generator, Generator)
    samples = run.generate_language(tasks, generator, run.RunOptions(n=1), path)

    assert generator.asked == [tasks[2].prompt, tasks[3].prompt]
    assert samples[tasks[0].task_id] == ["    pass\n"]  # cached, not regenerated
    assert samples[tasks[3].task_id] == [tasks[3].canonical_solution]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["task_id"] for line in lines] == [task.task_id for task in tasks]


def test_execution_resumes_and_reruns_only_changed_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = load_tasks("python")[:3]
    calls: list[str] = []

    def fake_execute(task, code, toolchain, isolation=None):
        calls.append(task.task_id)
        return SandboxResult("passed" if "pass" in code else "failed", 0, "", "", 0.01)

    monkeypatch.setattr(run, "execute", fake_execute)
    toolchain = Toolchain("python", available=True)
    path = tmp_path / "exec.jsonl"
    samples = {task.task_id: ["    pass\n", "    return 0\n"] for task in tasks}
    first = run.execute_language(tasks, samples, toolchain, path, workers=2, truncate=True)
    assert len(calls) == 6
    assert [record["status"] for record in first[tasks[0].task_id]] == ["passed", "failed"]

    samples[tasks[1].task_id] = ["    pass\n", "    pass  # changed\n"]
    second = run.execute_language(tasks, samples, toolchain, path, workers=2, truncate=True)
    assert len(calls) == 7  # only the changed sample ran again
    assert [record["status"] for record in second[tasks[1].task_id]] == ["passed", "passed"]


def test_a_sandbox_error_is_recorded_and_run_again_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = load_tasks("python")[:2]
    calls: list[str] = []

    def flaky_execute(task, code, toolchain, isolation=None):
        calls.append(task.task_id)
        if task.task_id == tasks[0].task_id and calls.count(task.task_id) == 1:
            raise OSError("cannot make the temp dir")
        return SandboxResult("passed", 0, "", "", 0.01)

    monkeypatch.setattr(run, "execute", flaky_execute)
    toolchain = Toolchain("python", available=True)
    path = tmp_path / "exec.jsonl"
    samples = {task.task_id: ["    pass\n"] for task in tasks}
    first = run.execute_language(tasks, samples, toolchain, path, workers=1, truncate=True)
    assert first[tasks[0].task_id][0]["status"] == "error"
    assert "cannot make the temp dir" in first[tasks[0].task_id][0]["detail"]
    assert first[tasks[1].task_id][0]["status"] == "passed"  # the benchmark went on
    second = run.execute_language(tasks, samples, toolchain, path, workers=1, truncate=True)
    assert calls == [tasks[0].task_id, tasks[1].task_id, tasks[0].task_id]  # only the error ran again
    assert second[tasks[0].task_id][0]["status"] == "passed"


def _small_results(variant: str, pass1: float) -> dict:
    """Greedy results on Go/0 and Go/95 (known bad, failing): pass@1 0.5 means Go/0 passed."""
    entry = {
        "available": True,
        "n_tasks": 2,
        "pass_at_k": {"pass@1": pass1},
        "statuses": {"passed": 1, "failed": 1},
        "known_bad": {"Go/95": {"why": "flaky", "n": 1, "c": 0}},
        "wall_s": {"generate": 1.0, "execute": 2.0},
        "tasks": {
            "Go/0": {"n": 1, "c": int(pass1 == 0.5), "known_bad": None},
            "Go/95": {"n": 1, "c": 0, "known_bad": "flaky"},
        },
    }
    return {
        "schema": 1,
        "variant": variant,
        "model": {"name": "tiny", "model_hash": "abc", "quant": variant},
        "settings": {"n": 1, "temperature": 0.0, "max_tokens": 64, "isolation": "test"},
        "languages": {"go": entry, "rust": {"available": False, "reason": "rustc not found"}},
    }


def test_report_files_from_a_small_result_set(tmp_path: Path) -> None:
    for variant, pass1 in (("fp", 0.5), ("int4", 0.0)):
        (tmp_path / variant).mkdir()
        write_results(tmp_path / variant, _small_results(variant, pass1))

    written = write_report(tmp_path, {"go": 21.0})

    assert written == [tmp_path / REPORT_FILE, tmp_path / CHART_FILE]
    table = (tmp_path / REPORT_FILE).read_text()
    header = "| Language | fp pass@1 | int4 pass@1 | CodeGeeX-13B pass@1 | CodeGeeX2-6B pass@1 |"
    assert header + " model card pass@1 |" in table
    assert "| Go | 50.0 [9.5, 90.5] n=2 | 0.0 [0.0, 65.8] n=2 | 14.4 | 22.5 | 21.0 |" in table
    assert "- Go: fp vs int4: 1 only fp, 0 only int4, 0 both, 1 neither (n=2), exact McNemar p=1" in table
    assert "| Rust | n/a | n/a | 4.3 | 18.1 |  |" in table
    assert "known-bad Go/95 (0/1 passed)" in table
    assert "Rust: unavailable, skipped (rustc not found)" in table
    assert (tmp_path / CHART_FILE).read_bytes().startswith(b"\x89PNG")


def test_main_canonical_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--canonical", "--langs", "python", "--limit", "3", "--workers", "2", "--out", str(tmp_path)]
    assert run.main(argv) == 0
    results = json.loads((tmp_path / "canonical" / "results.json").read_text())
    python = results["languages"]["python"]
    assert python["pass_at_k"] == {"pass@1": 1.0}
    assert python["n_tasks"] == 3
    assert results["settings"]["canonical"] is True
    assert (tmp_path / REPORT_FILE).exists()
    assert "| Python | 100.0 [43.9, 100.0] n=3 |" in capsys.readouterr().out

    # Same dir, other sampling settings: refused rather than mixed into the cache.
    assert run.main([*argv, "-n", "2"]) == 2


def test_tiny_model_end_to_end_produces_all_report_files(tmp_path: Path, tiny_glm_dir: Path) -> None:
    """The engine-backed generator (prompt formats, decode, scope stop) through the whole harness."""
    argv = ["--langs", "python,js", "--limit", "2", "--model", str(tiny_glm_dir), "--max-tokens", "24", "--quant", "none"]
    assert run.main([*argv, "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "fp" / "results.json").read_text())
    assert set(results["languages"]) == {"python", "js"}
    for lang in ("python", "js"):
        assert len(results["languages"][lang]["tasks"]) == 2
    assert (tmp_path / "report.md").is_file()
    assert (tmp_path / "pass_at_1.png").stat().st_size > 1000
    assert len(list((tmp_path / "fp" / "generations").glob("*.jsonl"))) == 2


def test_jsonl_records_survive_unicode_line_separators(tmp_path):
    # Program output is stored unescaped (ensure_ascii=False); U+0085 / U+2028 inside a string must
    # not split a record (a Go run printed one and the cache could no longer be read).
    records = [{"stdout": "a\u2028b\x85c\u2029d\x1ce", "n": 1}, {"stdout": "plain", "n": 2}]
    path = tmp_path / "executions.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert run._read_jsonl(path) == records
