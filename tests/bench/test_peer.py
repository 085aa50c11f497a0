"""The llama-server peer: finding the binary, the request it sends, and a whole run against a server.

The server here is a small stand-in process speaking llama-server's HTTP (`/health`, `/infill`), so
the bench's real process handling (free port, readiness wait, stop) and its real HTTP client are
what is tested; it records every request body so the fields llama.vscode sends can be checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x.toolchains import find_toolchain, installed
from codegeex_lsp.bench.infill import run
from codegeex_lsp.bench.infill.peer import (
    ENV_BINARY,
    LlamaServerInfiller,
    cut_answer,
    find_llama_server,
    infill_request,
)
from codegeex_lsp.bench.infill.report import REPORT_FILE, RESULTS_FILE
from codegeex_lsp.bench.infill.suite import SUITE, load_rows, task_from_row
from codegeex_lsp.errors import ModelError
from tests.support.stand_in_llama_server import write_stand_in


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    binary = write_stand_in(tmp_path / "bin" / "llama-server")
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("STAND_IN_LOG", str(log))
    return binary, log


def test_binary_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_server) -> None:
    binary, _ = fake_server
    monkeypatch.setenv("CODEGEEX_LSP_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("CODEGEEX_LLAMA_CPP_BIN", raising=False)
    monkeypatch.delenv(ENV_BINARY, raising=False)
    path, reason = find_llama_server()
    assert path is None and "install-llama-cpp" in reason
    monkeypatch.setenv(ENV_BINARY, str(binary))
    assert find_llama_server() == (binary, "")
    assert find_llama_server(tmp_path / "nope")[0] is None
    monkeypatch.setenv(ENV_BINARY, str(tmp_path / "missing"))
    assert "not an executable" in find_llama_server()[1]


def test_request_carries_llama_vscode_fields_greedy() -> None:
    row = load_rows("span")[0]
    task = task_from_row("span", row)
    body = infill_request(task)
    line_start = row["prompt"].rfind("\n") + 1
    assert body["input_prefix"] + body["prompt"] == row["prompt"]
    assert body["input_prefix"] == row["prompt"][:line_start]
    assert body["input_suffix"] == row["suffix"]
    assert (body["n_predict"], body["temperature"], body["top_k"], body["stream"]) == (128, 0.0, 1, False)
    assert body["input_extra"] == [] and body["cache_prompt"] is True
    assert body["n_indent"] == len(body["prompt"]) - len(body["prompt"].lstrip())


def test_line_tasks_keep_the_first_line_only() -> None:
    single = task_from_row("single", load_rows("single")[0])
    multi = task_from_row("multi", load_rows("multi")[0])
    assert cut_answer(single, "    x = 1\n    y = 2\n") == "    x = 1"
    assert cut_answer(multi, "    x = 1\n    y = 2\n") == "    x = 1\n    y = 2\n"
    assert infill_request(single)["stop"] == ["\n"]  # same cut answer, fewer tokens (test_peer_stop_real)
    assert "stop" not in infill_request(multi)


def test_server_process_is_started_asked_and_stopped(tmp_path: Path, monkeypatch, fake_server) -> None:
    binary, log = fake_server
    monkeypatch.setenv("STAND_IN_ANSWER", "    for idx, elem in enumerate(numbers):\n    junk\n")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    task = task_from_row("single", load_rows("single")[0])
    infiller = LlamaServerInfiller(binary, gguf, "abc", tmp_path / "server.log", threads=1)
    try:
        infill = infiller.infill(task)
    finally:
        infiller.close()
    assert infiller.proc.poll() is not None  # stopped
    assert infill.text == "    for idx, elem in enumerate(numbers):"
    assert infill.program(task) == task.document  # the whole-line rule adds the newline back
    argv = json.loads(Path(str(log) + ".argv").read_text())
    assert argv[argv.index("-m") + 1] == str(gguf) and argv[argv.index("-t") + 1] == "1"
    assert json.loads(log.read_text().splitlines()[0])["input_suffix"] == task.suffix


def test_a_server_that_dies_is_a_clear_error(tmp_path: Path) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\nexit 3\n")
    binary.chmod(0o755)
    with pytest.raises(ModelError, match="exited with code 3"):
        LlamaServerInfiller(binary, tmp_path / "m.gguf", "", tmp_path / "log", ready_timeout_s=30)


def test_peer_run_through_the_bench_and_missing_peer_report(tmp_path: Path, monkeypatch, fake_server) -> None:
    if not installed("python") or not find_toolchain("python").available:
        pytest.skip(f"python toolchain unavailable: {find_toolchain('python').reason}")
    binary, log = fake_server
    monkeypatch.setenv("STAND_IN_ANSWER", "    return 0\n")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    base = ["--suite", SUITE, "--kinds", "single", "--limit", "2", "--out", str(tmp_path / "out")]
    assert (
        run.main([*base, "--peer", "llama-server", "--llama-server", str(binary), "--model", str(gguf)]) == 0
    )
    results = json.loads((tmp_path / "out" / "peer-llama-server" / RESULTS_FILE).read_text())
    assert results["settings"]["peer"] == "llama-server"
    assert results["model"]["name"] == "llama-server /infill (m.gguf)"
    assert results["totals"]["single"]["n"] == 2
    assert len(log.read_text().splitlines()) == 2

    missing = ["--peer", "llama-server", "--llama-server", str(tmp_path / "absent"), "--model", str(gguf)]
    assert run.main([*base[:-1], str(tmp_path / "out2"), *missing]) == 0
    report = (tmp_path / "out2" / REPORT_FILE).read_text()
    assert "peer missing: --llama-server" in report


def test_peer_refuses_other_variant_flags(tmp_path: Path) -> None:
    assert run.main(["--peer", "llama-server", "--canonical", "--out", str(tmp_path)]) == 2
    assert os.listdir(tmp_path) == []
