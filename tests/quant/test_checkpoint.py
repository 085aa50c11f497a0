"""The packed safetensors checkpoint: round trip, metadata, and clear errors for bad files."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from codegeex_lsp.errors import ModelError
from codegeex_lsp.quant import load_quantized_into, quantize_model_, read_metadata, save_quantized
from codegeex_lsp.quant.checkpoint import FORMAT, FORMAT_VERSION
from codegeex_lsp.quant.packing import LAYOUT_VERSION
from tests.quant.test_modules import TinyLM, _tiny

SOURCE_SHA = "0123456789abcdef" * 4


@pytest.fixture()
def saved(tmp_path):
    model = quantize_model_(_tiny(), "asym", 32)
    path = save_quantized(model, tmp_path / "tiny-int4.safetensors", {"source_model_sha256": SOURCE_SHA})
    return model, path


def _skeleton() -> TinyLM:
    with torch.device("meta"):
        return TinyLM()


def test_roundtrip_identical_outputs_and_metadata(saved) -> None:
    model, path = saved
    meta = read_metadata(path)
    assert meta["format"] == FORMAT and meta["format_version"] == str(FORMAT_VERSION)
    assert meta["layout_version"] == str(LAYOUT_VERSION)
    assert meta["mode"] == "asym" and meta["group_size"] == "32"
    assert meta["source_model_sha256"] == SOURCE_SHA and len(meta["content_sha256"]) == 64
    assert json.loads(meta["tied"]) == {"output.packed": "tok_embeddings.packed"}
    skeleton = _skeleton()
    got = load_quantized_into(skeleton, path, source_model_sha256=SOURCE_SHA)
    assert got == meta
    assert skeleton.output.packed is skeleton.tok_embeddings.packed
    ids = torch.tensor([[0, 7, 100, 42]])
    with torch.inference_mode():
        assert torch.equal(skeleton(ids), model(ids))
    assert all(t.device.type == "cpu" for t in skeleton.state_dict().values())


def test_tampered_data_is_detected(saved) -> None:
    _, path = saved
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256"):
        load_quantized_into(_skeleton(), path)


def test_damaged_header_is_detected(saved) -> None:
    _, path = saved
    raw = bytearray(path.read_bytes())
    raw[8:20] = b"not json at!"
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="header"):
        load_quantized_into(_skeleton(), path)
    path.write_bytes(b"\x01\x02")
    with pytest.raises(ModelError, match="not a safetensors"):
        load_quantized_into(_skeleton(), path)


def _rewrite_meta(path, **changes: str) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"].update(changes)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"layout_version": "0"}, "layout v0"),
        ({"format_version": "99"}, "format v99"),
        ({"format": "gguf"}, "not a codegeex-lsp-int4"),
    ],
)
def test_version_mismatch_is_refused(saved, change, message) -> None:
    _, path = saved
    _rewrite_meta(path, **change)
    with pytest.raises(ModelError, match=message):
        load_quantized_into(_skeleton(), path)


def test_other_model_is_refused(saved) -> None:
    _, path = saved
    with pytest.raises(ModelError, match="expected"):
        load_quantized_into(_skeleton(), path, source_model_sha256="f" * 64)
    with torch.device("meta"):
        other = TinyLM(vocab=99)
    with pytest.raises(ModelError, match="does not fit"):
        load_quantized_into(other, path)


def test_save_requires_source_sha_and_a_quantized_model(tmp_path) -> None:
    model = quantize_model_(_tiny(), "sym", 32)
    with pytest.raises(ValueError, match="source_model_sha256"):
        save_quantized(model, tmp_path / "x.safetensors", {})
    with pytest.raises(ValueError, match="no int4 modules"):
        save_quantized(_tiny(), tmp_path / "y.safetensors", {"source_model_sha256": SOURCE_SHA})
    assert not list(tmp_path.iterdir())


def test_residual_planes_round_trip(tmp_path) -> None:
    model = quantize_model_(_tiny(), "asym", 32, residual=lambda name: name == "w_down")
    path = save_quantized(model, tmp_path / "residual.safetensors", {"source_model_sha256": SOURCE_SHA})
    skeleton = _skeleton()
    load_quantized_into(skeleton, path, source_model_sha256=SOURCE_SHA)
    assert torch.equal(skeleton.w_down.residual, model.w_down.residual)
    assert skeleton.wo.residual is None
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.inference_mode():
        assert torch.equal(skeleton(ids), model(ids))


def test_format_v1_checkpoints_still_load(saved) -> None:
    """v1 files (before residual planes) are v2 files whose specs lack the field."""
    model, path = saved
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"]["format_version"] = "1"
    specs = json.loads(header["__metadata__"]["specs"])
    for spec in specs:
        del spec["residual"]
    header["__metadata__"]["specs"] = json.dumps(specs, separators=(",", ":"))
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n :])
    skeleton = _skeleton()
    load_quantized_into(skeleton, path, source_model_sha256=SOURCE_SHA)
    ids = torch.tensor([[0, 7, 100, 42]])
    with torch.inference_mode():
        assert torch.equal(skeleton(ids), model(ids))
