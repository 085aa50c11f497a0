"""Check a model file's structure before anything costly reads it (torch-free).

A GGUF is walked header first with bounded reads: magic and version, counts, every metadata value
and tensor record, each length checked against what is left of the file, then the tensors' data
ranges against the file size and the architecture's dimensions against sane bounds. Only then is
the file hashed and converted: a sparse 20 GB file or a header claiming 2^60 tensors fails here in
milliseconds, with one `ModelError`, instead of after a full hash or inside numpy. `check_hf_config`
does the same for a Hugging Face `config.json` (a list, NaN, zero heads, absurd sizes).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from codegeex_lsp.errors import ModelError

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
GGUF_DEFAULT_ALIGNMENT = 32
MAX_TENSORS = 1 << 16
MAX_METADATA = 1 << 16
MAX_KEY_BYTES = 1 << 16
MAX_DIMS = 4
MAX_TRAILING_BYTES = 1 << 20  # after the last tensor: padding only
MAX_ARRAY_DEPTH = 2

# Bounds on a decoder's shape, far beyond any model this engine runs on a CPU.
DIM_BOUNDS = {
    "hidden_size": (1, 1 << 15),
    "num_hidden_layers": (1, 1 << 9),
    "num_attention_heads": (1, 1 << 10),
    "num_key_value_heads": (1, 1 << 10),
    "intermediate_size": (1, 1 << 18),
    "vocab_size": (1, 1 << 21),
    "head_dim": (1, 1 << 12),
    "max_position_embeddings": (1, 1 << 24),
}

# GGUF value types: struct format of the scalars (8: string, 9: array).
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_KEPT_ARRAYS = ("tokenizer.ggml.tokens",)  # arrays whose length the checks need; others are skipped


@dataclass(frozen=True)
class GgufTensor:
    name: str
    dims: tuple[int, ...]  # GGUF order: dims[0] is the row length
    type: int
    offset: int
    n_bytes: int


@dataclass(frozen=True)
class GgufHeader:
    version: int
    metadata: dict[str, Any]  # scalars and strings; kept arrays as their length (`key` -> int)
    tensors: tuple[GgufTensor, ...]
    data_start: int
    file_size: int


class _Reader:
    """Bounded reads from the file: a length past the end is a ModelError, never a huge allocation."""

    def __init__(self, handle: BinaryIO, size: int, name: str) -> None:
        self.handle = handle
        self.size = size
        self.name = name
        self.pos = 0

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.name} is not a valid GGUF file ({what}); re-download or re-convert it")

    def left(self) -> int:
        return self.size - self.pos

    def read(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.left():
            raise self.fail(f"{what} runs past the end of the file")
        data = self.handle.read(n)
        if len(data) != n:
            raise self.fail(f"{what} is truncated")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if n < 0 or n > self.left():
            raise self.fail(f"{what} runs past the end of the file")
        self.handle.seek(n, os.SEEK_CUR)
        self.pos += n

    def scalar(self, fmt: str, what: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt), what))[0]

    def string(self, what: str, limit: int | None = None) -> str:
        n = self.scalar("<Q", what)
        if limit is not None and n > limit:
            raise self.fail(f"{what} is {n} bytes long")
        raw = self.read(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8") from None


def _read_value(reader: _Reader, kind: int, key: str, depth: int = 0) -> Any:
    if kind in _SCALARS:
        return reader.scalar(_SCALARS[kind], f"the value of {key}")
    if kind == _STRING:
        return reader.string(f"the value of {key}")
    if kind != _ARRAY or depth >= MAX_ARRAY_DEPTH:
        raise reader.fail(f"metadata {key} has value type {kind}")
    elem = reader.scalar("<I", f"the array type of {key}")
    count = reader.scalar("<Q", f"the array length of {key}")
    if elem in _SCALARS:
        reader.skip(count * struct.calcsize(_SCALARS[elem]), f"the array {key}")
        return count
    if elem not in (_STRING, _ARRAY):
        raise reader.fail(f"array {key} has element type {elem}")
    if count > reader.left() // 8:  # every element takes at least 8 bytes (a length)
        raise reader.fail(f"the array {key} claims {count} elements")
    for _ in range(count):
        if elem == _STRING:
            reader.skip(reader.scalar("<Q", f"an element of {key}"), f"an element of {key}")
        else:
            _read_value(reader, _ARRAY, key, depth + 1)
    return count


def _tensor_bytes(reader: _Reader, name: str, dims: tuple[int, ...], kind: int) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
        raise reader.fail(f"tensor {name} has unknown type {kind}") from None
    if dims[0] % block:
        raise reader.fail(f"tensor {name}'s rows ({dims[0]}) are not whole blocks of {block}")
    return math.prod(dims) // block * type_size


def read_gguf_header(path: Path) -> GgufHeader:
    """The header of a GGUF file, every length checked against the file (ModelError otherwise)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            return _read_header(_Reader(handle, size, str(path)))
    except OSError as exc:
        raise ModelError(f"cannot read {path} ({exc.strerror or exc})") from exc


def _read_header(reader: _Reader) -> GgufHeader:
    size = reader.size
    if reader.left() < 24 or reader.read(4, "the magic") != GGUF_MAGIC:
        raise reader.fail("it does not start with the GGUF magic")
    version = reader.scalar("<I", "the version")
    if version not in GGUF_VERSIONS:
        raise reader.fail(f"version {version}; versions {GGUF_VERSIONS} are supported")
    n_tensors = reader.scalar("<Q", "the tensor count")
    n_metadata = reader.scalar("<Q", "the metadata count")
    if n_tensors > MAX_TENSORS or n_metadata > MAX_METADATA:
        raise reader.fail(f"it claims {n_tensors} tensors and {n_metadata} metadata entries")
    metadata: dict[str, Any] = {}
    for _ in range(n_metadata):
        key = reader.string("a metadata key", MAX_KEY_BYTES)
        kind = reader.scalar("<I", f"the type of {key}")
        value = _read_value(reader, kind, key)
        if kind != _ARRAY or key in _KEPT_ARRAYS:
            metadata[key] = value
    raw_tensors = []
    for _ in range(n_tensors):
        name = reader.string("a tensor name", MAX_KEY_BYTES)
        n_dims = reader.scalar("<I", f"the rank of {name}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise reader.fail(f"tensor {name} has {n_dims} dimensions")
        dims = tuple(reader.scalar("<Q", f"a dimension of {name}") for _ in range(n_dims))
        if not all(1 <= d <= 1 << 32 for d in dims):
            raise reader.fail(f"tensor {name} has dimensions {dims}")
        kind = reader.scalar("<I", f"the type of {name}")
        offset = reader.scalar("<Q", f"the offset of {name}")
        raw_tensors.append((name, dims, kind, offset))
    alignment = metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if type(alignment) is not int or not 1 <= alignment <= 1 << 16 or alignment & (alignment - 1):
        raise reader.fail(f"general.alignment is {alignment!r}")
    data_start = -(-reader.pos // alignment) * alignment
    tensors = []
    end = data_start
    for name, dims, kind, offset in raw_tensors:
        n_bytes = _tensor_bytes(reader, name, dims, kind)
        if offset % alignment or data_start + offset + n_bytes > size:
            raise reader.fail(f"tensor {name}'s data ({n_bytes} bytes at {offset}) is not inside the file")
        end = max(end, data_start + offset + n_bytes)
        tensors.append(GgufTensor(name, dims, kind, offset, n_bytes))
    if size - end > MAX_TRAILING_BYTES:
        raise reader.fail(f"{size - end} bytes follow the last tensor")
    return GgufHeader(version, metadata, tuple(tensors), data_start, size)


def _int_in(value: Any, name: str, where: str) -> int:
    lo, hi = DIM_BOUNDS[name]
    if type(value) is not int or not lo <= value <= hi:
        raise ModelError(f"{where}: {name} is {value!r}, not an integer in [{lo}, {hi}]; the model is broken")
    return value


def _positive_float(value: Any, name: str, where: str) -> None:
    if type(value) not in (int, float) or not (math.isfinite(value) and value > 0):
        raise ModelError(f"{where}: {name} is {value!r}, not a positive number; the model is broken")


def check_gguf(path: Path, supported_archs: tuple[str, ...]) -> GgufHeader:
    """`read_gguf_header`, then the metadata our converter reads: architecture, dimensions, tokens."""
    header = read_gguf_header(path)
    meta = header.metadata
    where = str(path)
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or arch not in supported_archs:
        raise ModelError(
            f"GGUF architecture {arch!r} is not supported (supported: {', '.join(supported_archs)}); "
            "use a Hugging Face safetensors directory instead"
        )
    hidden = _int_in(meta.get(f"{arch}.embedding_length"), "hidden_size", where)
    heads = _int_in(meta.get(f"{arch}.attention.head_count"), "num_attention_heads", where)
    kv_heads = _int_in(meta.get(f"{arch}.attention.head_count_kv", heads), "num_key_value_heads", where)
    layers = _int_in(meta.get(f"{arch}.block_count"), "num_hidden_layers", where)
    _int_in(meta.get(f"{arch}.feed_forward_length"), "intermediate_size", where)
    _int_in(meta.get(f"{arch}.context_length", 4096), "max_position_embeddings", where)
    if hidden % heads or heads % kv_heads:
        raise ModelError(
            f"{where}: {heads} heads ({kv_heads} kv) do not divide {hidden}; the model is broken"
        )
    for name in ("attention.layer_norm_rms_epsilon", "rope.freq_base"):
        if f"{arch}.{name}" in meta:
            _positive_float(meta[f"{arch}.{name}"], name, where)
    n_tokens = meta.get("tokenizer.ggml.tokens")
    if type(n_tokens) is not int or n_tokens < 1:
        raise ModelError(f"{where} has no tokenizer (tokenizer.ggml.tokens); this GGUF cannot be used")
    _int_in(n_tokens, "vocab_size", where)
    by_name = {t.name: t for t in header.tensors}
    embedding = by_name.get("token_embd.weight")
    if embedding is None or embedding.dims != (hidden, n_tokens):
        shape = embedding.dims if embedding else None
        raise ModelError(
            f"{where}: token_embd.weight is {shape}, not ({hidden}, {n_tokens}) as its metadata says; "
            "the model is broken"
        )
    for tensor in header.tensors:
        if tensor.name.startswith("blk."):
            index = tensor.name.split(".")[1]
            if not index.isdigit() or int(index) >= layers:
                raise ModelError(f"{where}: tensor {tensor.name} is not in one of its {layers} blocks")
    fp32_bytes = sum(4 * math.prod(t.dims) for t in header.tensors)
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if fp32_bytes > memory:
        raise ModelError(
            f"{where} needs {fp32_bytes / 2**30:.1f} GiB to convert, more than this machine's "
            f"{memory / 2**30:.1f} GiB"
        )
    return header


def check_hf_config(config: Any, where: str) -> dict[str, Any]:
    """A config.json's values the engine reads, bounded: a clear ModelError instead of a crash deep
    in arithmetic (zero heads), numpy (NaN eps) or an allocation (absurd sizes)."""
    if not isinstance(config, dict):
        raise ModelError(
            f"{where} must hold a JSON object, not {type(config).__name__}; re-download the model"
        )
    for name in DIM_BOUNDS:
        if config.get(name) is not None:
            _int_in(config[name], name, where)
    heads = config.get("num_attention_heads")
    hidden = config.get("hidden_size")
    kv_heads = config.get("num_key_value_heads")
    if heads is not None and kv_heads is not None and heads % kv_heads:
        raise ModelError(f"{where}: {kv_heads} kv heads do not divide {heads} heads; the model is broken")
    if config.get("head_dim") is None and hidden is not None and heads is not None and hidden % heads:
        raise ModelError(f"{where}: {heads} heads do not divide hidden_size {hidden}; the model is broken")
    for name in ("rms_norm_eps", "rope_theta"):
        if config.get(name) is not None:
            _positive_float(config[name], name, where)
    for name in ("rope_parameters", "rope_scaling"):
        if config.get(name) is not None and not isinstance(config[name], dict):
            raise ModelError(f"{where}: {name} is not an object; the model is broken")
    factor = config.get("partial_rotary_factor")
    if factor is not None and (type(factor) not in (int, float) or not 0 < factor <= 1):
        raise ModelError(f"{where}: partial_rotary_factor is {factor!r}; the model is broken")
    eos = config.get("eos_token_id")
    eos_list = eos if isinstance(eos, list) else [eos]
    if not all(e is None or type(e) is int for e in eos_list):
        raise ModelError(f"{where}: eos_token_id is {eos!r}, not an integer or a list of them")
    return config
