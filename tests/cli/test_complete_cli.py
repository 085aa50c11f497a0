"""`codegeex-lsp complete` end to end in a subprocess: JSON shape with the tiny model, bad input cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "codegeex_lsp.cli", *args, "--cache-dir", str(cache)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text("def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n", encoding="utf-8")
    return path


def test_json_output_with_tiny_model(tiny_glm_dir, source, tmp_path):
    proc = run_cli(
        "complete",
        str(source),
        "--line",
        "1",
        "--character",
        "4",
        "--json",
        "--model",
        str(tiny_glm_dir),
        "--max-tokens",
        "8",
        "--dtype",
        "float32",
        "--quant",
        "none",
        cache=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert isinstance(out["completion"], str)
    assert out["model"] == str(tiny_glm_dir)
    assert out["format"]
    assert out["prompt_tokens"] > 10
    assert 0 < out["generated_tokens"] <= 8
    for key in ("load_s", "prefill_s", "decode_s", "decode_tok_s"):
        assert out["timings"][key] >= 0
    assert out["language"] == "python"


@pytest.mark.parametrize(
    ("line", "character", "message"),
    [
        (99, 0, "line 99 is outside sample.py"),
        (0, 500, "character 500 is past the end of line 0"),
        (-1, 0, "must not be negative"),
    ],
)
def test_position_outside_file(source, tmp_path, line, character, message):
    proc = run_cli(
        "complete",
        str(source),
        "--line",
        str(line),
        "--character",
        str(character),
        "--model",
        "/nonexistent",
        cache=tmp_path,
    )
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_binary_file(tmp_path):
    path = tmp_path / "blob.py"
    path.write_bytes(b"\x7fELF\x00\x01\x02" * 100)
    proc = run_cli("complete", str(path), "--line", "0", "--character", "0", cache=tmp_path)
    assert proc.returncode != 0
    assert "binary file" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_file(tmp_path):
    proc = run_cli("complete", str(tmp_path / "nope.py"), "--line", "0", "--character", "0", cache=tmp_path)
    assert proc.returncode != 0 and "no such file" in proc.stderr


def test_empty_file_gives_empty_completion(tmp_path):
    path = tmp_path / "empty.go"
    path.write_text("")
    proc = run_cli("complete", str(path), "--line", "0", "--character", "0", "--json", cache=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["completion"] == ""


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("/no/such/model", "not found"),
        ("MODEL_FILE", "not a valid GGUF"),
    ],
)
def test_bad_model_one_line_error(source, tmp_path, model, message):
    if model == "MODEL_FILE":
        bad = tmp_path / "corrupt.gguf"
        bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
        model = str(bad)
    proc = run_cli(
        "complete", str(source), "--line", "1", "--character", "4", "--model", model, cache=tmp_path
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in proc.stderr


def test_unsupported_architecture_exit_code(tiny_glm_dir, source, tmp_path):
    import shutil

    d = tmp_path / "bert"
    shutil.copytree(tiny_glm_dir, d)
    config = json.loads((d / "config.json").read_text())
    config["model_type"] = "bert"
    (d / "config.json").write_text(json.dumps(config))
    proc = run_cli(
        "complete", str(source), "--line", "1", "--character", "4", "--model", str(d), cache=tmp_path
    )
    assert proc.returncode != 0
    assert "'bert' is not supported" in proc.stderr and "Traceback" not in proc.stderr
