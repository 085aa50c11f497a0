"""The packed int4 checkpoint: one safetensors file written once after conversion, loaded in seconds.

Header metadata (all strings, as safetensors requires):
    format               "codegeex-lsp-int4"
    format_version       FORMAT_VERSION
    layout_version       packing.LAYOUT_VERSION (kernels/int4_layout.h)
    mode, group_size     those of most linears, unless `meta` gives them (each module's are in `specs`)
    source_model_sha256  identity of the float model it was made from (given by the caller)
    specs                JSON list of QuantSpec, one per int4 module
    tied                 JSON {key: key it shares storage with}; shared tensors are stored once
    content_sha256       sha256 of the tensor data region, checked on load (catches a damaged file)
plus any other string the caller puts in `meta`.

`load_quantized_into(skeleton, path)` takes the float model built on the meta device (or with
torch.empty), swaps in empty int4 modules from `specs`, and assigns the tensors; anything that does not
match raises `ModelError` saying what to delete or rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from codegeex_lsp.errors import ModelError
from codegeex_lsp.quant.linear import convert_for_runtime, specs_from_json, specs_of, specs_to_json
from codegeex_lsp.quant.packing import LAYOUT_VERSION

FORMAT = "codegeex-lsp-int4"
# v2: specs may carry `residual` (a second int4 plane per linear); v3: a `screened_head` spec (an lm
# head as an int4 screen plus exact 8-bit rows, quant/screened_head.py). Each reads the older ones.
FORMAT_VERSION = 3
READABLE_VERSIONS = ("1", "2", "3")
REQUIRED_META = ("source_model_sha256",)
_HASH_PLACEHOLDER = "0" * 64
_READ_BLOCK = 1 << 22


def _header(path: Path) -> tuple[int, dict]:
    """(offset of the data region, parsed JSON header) of a safetensors file."""
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ModelError(f"{path}: not a safetensors file (truncated)")
        (n,) = struct.unpack("<Q", raw)
        if n > 100_000_000:
            raise ModelError(f"{path}: not a safetensors file (header length {n})")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: damaged safetensors header ({exc}); delete it to re-convert") from exc
    return 8 + n, header


def _data_sha256(path: Path, offset: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        while block := f.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The checkpoint's metadata, without reading the tensors."""
    _, header = _header(Path(path))
    return dict(header.get("__metadata__") or {})


def save_quantized(model: nn.Module, path: str | os.PathLike[str], meta: Mapping[str, object]) -> Path:
    """Write the converted `model` (all of its state) to `path`. `meta` must hold
    source_model_sha256; its other entries are stored as strings too. Atomic: a crash leaves no file."""
    missing = [k for k in REQUIRED_META if not meta.get(k)]
    if missing:
        raise ValueError(f"save_quantized: meta lacks {missing}")
    specs = specs_of(model)
    if not specs:
        raise ValueError("save_quantized: the model has no int4 modules; run quantize_model_ first")
    state = model.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    by_storage: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for key, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if ident in by_storage:
            tied[key] = by_storage[ident]
            continue
        by_storage[ident] = key
        tensors[key] = t
    linear_specs = [s for s in specs if s.kind == "linear"] or specs
    common_mode = Counter(s.mode for s in linear_specs).most_common(1)[0][0]
    common_group = Counter(s.group_size for s in linear_specs).most_common(1)[0][0]
    metadata = {str(k): str(v) for k, v in meta.items()}
    metadata.update(
        {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "layout_version": str(LAYOUT_VERSION),
            "mode": str(meta.get("mode", common_mode)),
            "group_size": str(meta.get("group_size", common_group)),
            "specs": specs_to_json(specs),
            "tied": json.dumps(tied, separators=(",", ":")),
            "content_sha256": _HASH_PLACEHOLDER,
        }
    )
    path = Path(path)
    _remove_stale_partials(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        # Fill in the hash of the data region: same length as the placeholder, so offsets do not move.
        offset, _ = _header(tmp)
        digest = _data_sha256(tmp, offset)
        with tmp.open("r+b") as f:
            head = f.read(offset)
            at = head.index(_HASH_PLACEHOLDER.encode())
            f.seek(at)
            f.write(digest.encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _remove_stale_partials(path: Path) -> None:
    """Delete `<name>.<pid>.partial` files left by writers that died (SIGKILL skips cleanup)."""
    for stale in path.parent.glob(f"{path.name}.*.partial"):
        pid = stale.name[len(path.name) + 1 : -len(".partial")]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a crash right after it could otherwise lose the new name)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_metadata(meta: Mapping[str, str], path: Path, *, source_model_sha256: str | None = None) -> None:
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path}: not a {FORMAT} checkpoint (format={meta.get('format')!r})")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ModelError(
            f"{path}: checkpoint format v{meta.get('format_version')}, this version reads "
            f"v{'/v'.join(READABLE_VERSIONS)}; "
            "delete it to re-convert"
        )
    if meta.get("layout_version") != str(LAYOUT_VERSION):
        raise ModelError(
            f"{path}: packed with kernel layout v{meta.get('layout_version')}, the kernels use "
            f"v{LAYOUT_VERSION}; delete it to re-convert"
        )
    if source_model_sha256 is not None and meta.get("source_model_sha256") != source_model_sha256:
        raise ModelError(
            f"{path}: made from model sha256 {meta.get('source_model_sha256')}, expected {source_model_sha256}; "
            "delete it to re-convert"
        )


def load_quantized_into(
    model_skeleton: nn.Module,
    path: str | os.PathLike[str],
    *,
    source_model_sha256: str | None = None,
    verify: bool = True,
    kernel: str | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, str]:
    """Fill `model_skeleton` (the float architecture, parameters on "meta" or uninitialized) from the
    checkpoint at `path`; returns its metadata. verify: check content_sha256 (one pass over the file)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint")
    offset, header = _header(path)
    meta = dict(header.get("__metadata__") or {})
    check_metadata(meta, path, source_model_sha256=source_model_sha256)
    if verify and _data_sha256(path, offset) != meta.get("content_sha256"):
        raise ModelError(
            f"{path}: content does not match its sha256 (damaged or edited); delete it to re-convert"
        )
    try:
        specs = specs_from_json(meta["specs"])
        tied = json.loads(meta.get("tied", "{}"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable quantization specs ({exc}); delete it to re-convert") from exc
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ModelError(f"{path}: cannot read tensors ({exc}); delete it to re-convert") from exc
    for key, source in tied.items():
        if source not in state:
            raise ModelError(f"{path}: tied tensor {key} points to missing {source}")
        state[key] = state[source]
    try:
        convert_for_runtime(model_skeleton, specs, kernel=kernel, device="meta")
        model_skeleton.load_state_dict(state, strict=True, assign=True)
    except (AttributeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: does not fit this model ({exc}); delete it to re-convert") from exc
    return meta
