"""Checkpoint writes are atomic (a killed writer leaves no file under the final name) and the
engine rebuilds an int4 checkpoint that is truncated or damaged, saying so in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import torch

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.quant import load_quantized_into, quantize_model_, read_metadata, save_quantized
from tests.quant.test_modules import TinyLM, _tiny

SOURCE_SHA = "0123456789abcdef" * 4

_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from safetensors.torch import save_file as real_save_file
    from codegeex_lsp.quant import checkpoint, quantize_model_
    from tests.quant.test_modules import _tiny

    def save_then_hang(tensors, path, metadata):
        real_save_file(tensors, path, metadata=metadata)
        print("written", flush=True)
        time.sleep(600)  # killed here: the data is on disk, the rename has not happened

    checkpoint.save_file = save_then_hang
    checkpoint.save_quantized(quantize_model_(_tiny(), "asym", 32), sys.argv[1], {"source_model_sha256": "x" * 64})
    """
)


def test_a_killed_writer_leaves_no_file_under_the_final_name(tmp_path) -> None:
    target = tmp_path / "m-int4.safetensors"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert not target.exists()
    partials = list(tmp_path.glob("m-int4.safetensors.*.partial"))
    assert [p.name for p in partials] == [f"m-int4.safetensors.{proc.pid}.partial"]
    # The next writer removes the dead writer's partial file and publishes a complete checkpoint.
    model = quantize_model_(_tiny(), "asym", 32)
    save_quantized(model, target, {"source_model_sha256": SOURCE_SHA})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-int4.safetensors"]
    with torch.device("meta"):
        skeleton = TinyLM()
    assert load_quantized_into(skeleton, target, source_model_sha256=SOURCE_SHA)["source_model_sha256"] == SOURCE_SHA


def test_truncated_int4_checkpoint_is_rebuilt_with_a_clear_message(tiny_glm_dir, tmp_path) -> None:
    from codegeex_lsp.engine.load import INT4_RECIPE, load_model

    options = EngineOptions(model=str(tiny_glm_dir), quant="int4", threads=1, cache_dir=str(tmp_path))
    first: list[str] = []
    load_model(options, first.append)
    (path,) = (tmp_path / "int4").glob(f"*-{INT4_RECIPE}.safetensors")
    assert any("quantizing" in m for m in first)
    good_meta = read_metadata(path)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size - 1000)
    messages: list[str] = []
    loaded = load_model(options, messages.append)
    rebuilt = [m for m in messages if "int4 checkpoint unusable, rebuilding it" in m]
    assert len(rebuilt) == 1 and str(path) in rebuilt[0] and "\n" not in rebuilt[0]
    assert any("quantizing" in m for m in messages)
    assert path.stat().st_size == size and read_metadata(path)["recipe"] == good_meta["recipe"]
    # and the rebuilt file loads as is, with no rebuild
    again: list[str] = []
    load_model(options, again.append)
    assert not any("quantizing" in m or "unusable" in m for m in again)
    ids = torch.tensor([[1, 2, 3]])
    with torch.inference_mode():
        out = loaded.model(ids, 0, loaded.model.new_cache(max_len=3))
    assert torch.isfinite(out).all()


def test_damaged_bytes_are_rebuilt_too(tiny_glm_dir, tmp_path) -> None:
    from codegeex_lsp.engine.load import INT4_RECIPE, load_model

    options = EngineOptions(model=str(tiny_glm_dir), quant="int4", threads=1, cache_dir=str(tmp_path))
    load_model(options, lambda _m: None)
    (path,) = (tmp_path / "int4").glob(f"*-{INT4_RECIPE}.safetensors")
    with path.open("r+b") as f:
        f.seek(path.stat().st_size - 10)
        f.write(b"\xff" * 10)
    messages: list[str] = []
    load_model(options, messages.append)
    assert any("unusable, rebuilding" in m and "sha256" in m for m in messages)
