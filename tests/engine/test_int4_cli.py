"""`codegeex-lsp complete --json` names its weights, and the int4 build's progress bar goes to
stderr only (stdout stays one JSON object), through the real CLI process."""

from __future__ import annotations

import json
import subprocess
import sys

from codegeex_lsp.engine.load import INT4_LADDER, quant_label


def _complete(tiny_glm_dir, tmp_path, quant: str) -> subprocess.CompletedProcess:
    source = tmp_path / "sample.py"
    source.write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    args = ["complete", str(source), "--line", "1", "--character", "4", "--json", "--max-tokens", "4"]
    args += ["--model", str(tiny_glm_dir), "--quant", quant, "--threads", "1", "--cache-dir", str(tmp_path / "c")]
    return subprocess.run([sys.executable, "-m", "codegeex_lsp.cli", *args], capture_output=True, text=True, timeout=600)


def test_int4_build_shows_a_bar_on_stderr_and_json_names_the_recipe(tiny_glm_dir, tmp_path):
    proc = _complete(tiny_glm_dir, tmp_path, "int4")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # nothing but the JSON object on stdout
    assert out["quant"] == f"int4 ({INT4_LADDER[0].name})"  # a one-shot builds the first rung only
    assert "model install" in proc.stderr  # and says how to get the refined one
    assert "int4 build" in proc.stderr and "100%" in proc.stderr  # tqdm's bar, finished
    assert (tmp_path / "c" / "int4").is_dir()
    # The second run loads the checkpoint: no build, no bar.
    again = _complete(tiny_glm_dir, tmp_path, "int4")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["quant"] == out["quant"]
    assert "int4 build" not in again.stderr


def test_json_says_none_without_quantization(tiny_glm_dir, tmp_path):
    proc = _complete(tiny_glm_dir, tmp_path, "none")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["quant"] == "none"


def test_model_install_builds_every_rung_and_complete_then_serves_the_top(tiny_glm_dir, tmp_path):
    args = ["model", "install", "--model", str(tiny_glm_dir), "--threads", "1", "--cache-dir", str(tmp_path / "c")]
    proc = subprocess.run([sys.executable, "-m", "codegeex_lsp.cli", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["quant"] == quant_label("int4") == f"int4 ({INT4_LADDER[-1].name})"
    assert len(list((tmp_path / "c" / "int4").glob("*.safetensors"))) == len(INT4_LADDER)
    done = _complete(tiny_glm_dir, tmp_path, "int4")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["quant"] == quant_label("int4")
    assert "int4 build" not in done.stderr and "model install" not in done.stderr
