"""`bench sandbox-run` and the refusal to run generated code without a sandbox (`bench humanevalx`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x import run, sandbox, sandbox_run
from codegeex_lsp.bench.humaneval_x.sandbox import Isolation


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "codegeex-lsp"), "bench", "sandbox-run", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_reports_status_exit_code_output_and_mode(tmp_path: Path) -> None:
    program = tmp_path / "ok.py"
    program.write_text("print('hello')\nassert sum([1, 2]) == 3\n")
    done = _cli("--language", "python", str(program), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["status"], summary["returncode"]) == ("passed", 0)
    assert summary["stdout"].startswith("hello\n")
    assert summary["sandbox"] == sandbox.probe_isolation().mode


def test_cli_text_output_for_a_failing_program(tmp_path: Path) -> None:
    program = tmp_path / "bad.py"
    program.write_text("import sys\nsys.exit(0)\nassert False\n")
    done = _cli("--language", "python", str(program))
    assert done.returncode == 1
    assert "status: failed" in done.stdout
    assert "exit code: 0" in done.stdout
    assert "exited 0 before the tests finished" in done.stdout


def test_cli_rejects_a_missing_file() -> None:
    done = _cli("--language", "python", "/nonexistent/program.py")
    assert done.returncode == 2
    assert "cannot read" in done.stderr


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "probe_isolation", lambda: Isolation("none", "no sandbox available: test"))


def test_sandbox_run_refuses_without_a_sandbox_unless_told(
    no_sandbox: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "ok.py"
    program.write_text("assert True\n")
    assert sandbox_run.main(["--language", "python", str(program)]) == 2
    assert "--unsafe-no-sandbox" in capsys.readouterr().err
    assert sandbox_run.main(["--language", "python", str(program), "--unsafe-no-sandbox", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sandbox"] == "unsafe"


def test_humanevalx_refuses_before_any_work_without_a_sandbox(
    no_sandbox: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run.main(["--canonical", "--langs", "python", "--limit", "1", "--out", str(out)]) == 2
    assert "refusing to run generated code without a sandbox" in capsys.readouterr().err
    assert not out.exists()


def test_humanevalx_records_the_unsafe_mode(no_sandbox: None, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--canonical", "--langs", "python", "--limit", "1", "--out", str(out), "--unsafe-no-sandbox"]
    assert run.main(args) == 0
    results = json.loads((out / "canonical/results.json").read_text())
    assert results["settings"]["sandbox_mode"] == "unsafe"
    assert "NO SANDBOX" in results["settings"]["isolation"]
