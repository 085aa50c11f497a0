"""Hostile model files through the real CLI: `codegeex-lsp complete --model BAD` must print one
`error: ...` line (no traceback) and exit 2, under an address-space cap.

The GGUF cases are mutations of a tiny qwen2 GGUF that loads (checked first), re-emitted by a raw
writer so that counts, lengths, types and offsets can lie; the directory cases are mutations of
the tiny Hugging Face model. Big files are sparse. No case asserts on time: a hang is caught by
the subprocess timeout, a memory blow-up by the cap (the process then dies with MemoryError or a
signal, which fails the case).
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

gguf = pytest.importorskip("gguf")

from tests.engine.test_gguf import write_tiny_gguf  # noqa: E402

pytestmark = pytest.mark.timeout(1800)

AS_LIMIT_BYTES = 3 << 30  # address space of each CLI run (torch included); the valid model fits
HANG_GUARD_S = 300  # a run longer than this is a hang (not a timing check)
SOURCE = "def add(a, b):\n    return a + b\n"

# GGUF value types (the spec's numbering).
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
               U64: "<Q", I64: "<q", F64: "<d"}  # fmt: skip


@dataclass
class Tensor:
    name: str
    dims: list[int]
    type: int
    data: bytes


@dataclass
class Gguf:
    """A GGUF as editable parts; `render` writes whatever they say, consistent or not."""

    kvs: list[tuple[str, int, object]]  # key, type, value (arrays: (elem type, [values]))
    tensors: list[Tensor]
    magic: bytes = b"GGUF"
    version: int = 3
    alignment: int = 32
    n_tensors: int | None = None  # the counts written (None: the true ones)
    n_kvs: int | None = None
    offsets: dict[str, int] = field(default_factory=dict)  # overrides
    raw_kv: bytes = b""  # extra encoded metadata appended as is

    def kv(self, key: str):
        return next(v for k, _, v in self.kvs if k == key)

    def set(self, key: str, kind: int, value) -> Gguf:
        self.kvs = [(k, t, v) for k, t, v in self.kvs if k != key] + [(key, kind, value)]
        return self

    def drop(self, key: str) -> Gguf:
        self.kvs = [(k, t, v) for k, t, v in self.kvs if k != key]
        return self

    def render(self) -> bytes:
        out = bytearray(self.magic)
        out += struct.pack("<I", self.version)
        out += struct.pack("<Q", len(self.tensors) if self.n_tensors is None else self.n_tensors)
        n_kvs = len(self.kvs) + (1 if self.raw_kv else 0)
        out += struct.pack("<Q", n_kvs if self.n_kvs is None else self.n_kvs)
        for key, kind, value in self.kvs:
            out += _string(key) + struct.pack("<I", kind) + _value(kind, value)
        out += self.raw_kv
        data = bytearray()
        for tensor in self.tensors:
            data += b"\0" * (-len(data) % 32)
            out += _string(tensor.name) + struct.pack("<I", len(tensor.dims))
            out += b"".join(struct.pack("<Q", d) for d in tensor.dims)
            out += struct.pack("<IQ", tensor.type, self.offsets.get(tensor.name, len(data)))
            data += tensor.data
        out += b"\0" * (-len(out) % 32)
        return bytes(out + data + b"\0" * (-len(data) % 32))


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def _value(kind: int, value) -> bytes:
    if kind in _SCALAR_FMT:
        return struct.pack(_SCALAR_FMT[kind], value)
    if kind == STR:
        return _string(value)
    if kind == ARR:
        elem, items = value
        return struct.pack("<IQ", elem, len(items)) + b"".join(_value(elem, item) for item in items)
    raise ValueError(kind)


def parse_base(path: Path) -> Gguf:
    """The tiny GGUF as parts (through the gguf package's reader)."""
    reader = gguf.GGUFReader(str(path))
    kvs = []
    for name, fld in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        kind = int(fld.types[0])
        if kind == ARR:
            elem = int(fld.types[1])
            kvs.append((name, ARR, (elem, list(fld.contents()))))
        else:
            kvs.append((name, kind, fld.contents()))
    tensors = [
        Tensor(t.name, [int(d) for d in t.shape], int(t.tensor_type), bytes(t.data.tobytes()))
        for t in reader.tensors
    ]
    return Gguf(kvs, tensors)


# -- the cases ---------------------------------------------------------------------------------------

Case = Callable[[Path, bytes, Gguf, Path], Path]  # (dir, base bytes, base parts, hf dir) -> model path


def _file(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def _parts(mutate: Callable[[Gguf], object]) -> Case:
    def make(directory: Path, _raw: bytes, base: Gguf, _hf: Path) -> Path:
        parts = Gguf([*base.kvs], [Tensor(t.name, [*t.dims], t.type, t.data) for t in base.tensors])
        mutate(parts)
        return _file(directory, "model.gguf", parts.render())

    return make


def _bytes(edit: Callable[[bytes], bytes]) -> Case:
    return lambda directory, raw, _base, _hf: _file(directory, "model.gguf", edit(raw))


def _sparse(size: int, head: Callable[[bytes], bytes]) -> Case:
    def make(directory: Path, raw: bytes, _base: Gguf, _hf: Path) -> Path:
        path = _file(directory, "huge.gguf", head(raw))
        os.truncate(path, size)  # a hole: no disk used
        return path

    return make


def _hf(mutate: Callable[[Path], object]) -> Case:
    def make(directory: Path, _raw: bytes, _base: Gguf, hf: Path) -> Path:
        target = directory / "hf"
        shutil.copytree(hf, target)
        mutate(target)
        return target

    return make


def _config(edit: Callable[[dict], object]) -> Case:
    def mutate(target: Path) -> None:
        config = json.loads((target / "config.json").read_text())
        result = edit(config)
        text = result if isinstance(result, str) else json.dumps(config if result is None else result)
        (target / "config.json").write_text(text)

    return _hf(mutate)


def _tensor(name: str, change: Callable[[Tensor], object]) -> Callable[[Gguf], None]:
    def mutate(parts: Gguf) -> None:
        change(next(t for t in parts.tensors if t.name == name))

    return mutate


def _nested(depth: int) -> bytes:
    return b"".join(struct.pack("<IQ", ARR, 1) for _ in range(depth)) + struct.pack("<IQ", U8, 0)


CASES: dict[str, Case] = {
    # Bytes that are not a GGUF, or stop early.
    "empty file": _bytes(lambda raw: b""),
    "three bytes": _bytes(lambda raw: b"GGU"),
    "wrong magic": _bytes(lambda raw: b"GGML" + raw[4:]),
    "zeros": _bytes(lambda raw: b"\0" * 4096),
    "truncated to half": _bytes(lambda raw: raw[: len(raw) // 2]),
    "truncated in the header": _bytes(lambda raw: raw[:300]),
    "truncated in the data": _bytes(lambda raw: raw[:-100]),
    "sparse 20 GB, valid header": _sparse(20 << 30, lambda raw: raw),
    "sparse 20 GB of zeros": _sparse(20 << 30, lambda raw: b""),
    "not a .gguf name": lambda d, raw, _b, _h: _file(d, "model.bin", raw),
    # Counts, lengths and types that lie.
    "version 1": _parts(lambda g: setattr(g, "version", 1)),
    "version 999": _parts(lambda g: setattr(g, "version", 999)),
    "2^60 tensors": _parts(lambda g: setattr(g, "n_tensors", 1 << 60)),
    "2^60 metadata": _parts(lambda g: setattr(g, "n_kvs", 1 << 60)),
    "one tensor more than written": _parts(lambda g: setattr(g, "n_tensors", len(g.tensors) + 1)),
    "five metadata more than written": _parts(lambda g: setattr(g, "n_kvs", len(g.kvs) + 5)),
    "key of 2^62 bytes": _parts(lambda g: setattr(g, "raw_kv", struct.pack("<Q", 1 << 62) + b"k")),
    "key not UTF-8": _parts(lambda g: setattr(g, "raw_kv", _string(b"\xff\xfe") + struct.pack("<IB", U8, 1))),
    "string of 2^40 bytes": _parts(
        lambda g: setattr(g, "raw_kv", _string("x") + struct.pack("<IQ", STR, 1 << 40))
    ),
    "array of 2^50 items": _parts(
        lambda g: setattr(g, "raw_kv", _string("x") + struct.pack("<IIQ", ARR, U32, 1 << 50))
    ),
    "array of 2^50 strings": _parts(
        lambda g: setattr(g, "raw_kv", _string("x") + struct.pack("<IIQ", ARR, STR, 1 << 50))
    ),
    "array item of 2^40 bytes": _parts(
        lambda g: setattr(g, "raw_kv", _string("x") + struct.pack("<IIQQ", ARR, STR, 1, 1 << 40))
    ),
    "value type 99": _parts(lambda g: setattr(g, "raw_kv", _string("x") + struct.pack("<I", 99))),
    "array item type 77": _parts(
        lambda g: setattr(g, "raw_kv", _string("x") + struct.pack("<IIQ", ARR, 77, 1))
    ),
    "arrays nested 1000 deep": _parts(
        lambda g: setattr(g, "raw_kv", _string("x") + struct.pack("<I", ARR) + _nested(1000))
    ),
    "alignment 0": _parts(lambda g: g.set("general.alignment", U32, 0)),
    "alignment 3": _parts(lambda g: g.set("general.alignment", U32, 3)),
    "alignment a string": _parts(lambda g: g.set("general.alignment", STR, "32")),
    "tensor of rank 0": _parts(_tensor("output_norm.weight", lambda t: setattr(t, "dims", []))),
    "tensor of rank 9": _parts(_tensor("output_norm.weight", lambda t: setattr(t, "dims", [1] * 9))),
    "tensor dimension 0": _parts(_tensor("output_norm.weight", lambda t: setattr(t, "dims", [0]))),
    "tensor dimension 2^40": _parts(_tensor("token_embd.weight", lambda t: t.dims.__setitem__(1, 1 << 40))),
    "tensor type 999": _parts(_tensor("output_norm.weight", lambda t: setattr(t, "type", 999))),
    "tensor data past the end": _parts(lambda g: g.offsets.__setitem__("output_norm.weight", 1 << 40)),
    "tensor offset misaligned": _parts(lambda g: g.offsets.__setitem__("output_norm.weight", 7)),
    # Metadata the converter reads.
    "no architecture": _parts(lambda g: g.drop("general.architecture")),
    "architecture gpt2": _parts(lambda g: g.set("general.architecture", STR, "gpt2")),
    "architecture an int": _parts(lambda g: g.set("general.architecture", U32, 2)),
    "zero heads": _parts(lambda g: g.set("qwen2.attention.head_count", U32, 0)),
    "no head count": _parts(lambda g: g.drop("qwen2.attention.head_count")),
    "zero kv heads": _parts(lambda g: g.set("qwen2.attention.head_count_kv", U32, 0)),
    "heads do not divide": _parts(lambda g: g.set("qwen2.attention.head_count", U32, 3)),
    "huge embedding length": _parts(lambda g: g.set("qwen2.embedding_length", U64, 1 << 31)),
    "a million blocks": _parts(lambda g: g.set("qwen2.block_count", U32, 10**6)),
    "zero blocks": _parts(lambda g: g.set("qwen2.block_count", U32, 0)),
    "feed-forward length a string": _parts(lambda g: g.set("qwen2.feed_forward_length", STR, "128")),
    "embedding length a float": _parts(lambda g: g.set("qwen2.embedding_length", F32, 64.0)),
    "context length 2^40": _parts(lambda g: g.set("qwen2.context_length", U64, 1 << 40)),
    "NaN rms epsilon": _parts(lambda g: g.set("qwen2.attention.layer_norm_rms_epsilon", F32, math.nan)),
    "-inf rope base": _parts(lambda g: g.set("qwen2.rope.freq_base", F32, -math.inf)),
    "no tokens": _parts(lambda g: g.drop("tokenizer.ggml.tokens")),
    "empty token list": _parts(lambda g: g.set("tokenizer.ggml.tokens", ARR, (STR, []))),
    "tokens a string": _parts(lambda g: g.set("tokenizer.ggml.tokens", STR, "a b c")),
    "no merges": _parts(lambda g: g.drop("tokenizer.ggml.merges")),
    "embedding shape off": _parts(_tensor("token_embd.weight", lambda t: t.dims.__setitem__(0, 32))),
    "no embedding": _parts(
        lambda g: setattr(g, "tensors", [t for t in g.tensors if t.name != "token_embd.weight"])
    ),
    "block 99 of 2": _parts(
        _tensor("blk.1.attn_q.weight", lambda t: setattr(t, "name", "blk.99.attn_q.weight"))
    ),
    "unknown tensor": _parts(_tensor("output_norm.weight", lambda t: setattr(t, "name", "mystery.weight"))),
    "a layer tensor missing": _parts(
        lambda g: setattr(g, "tensors", [t for t in g.tensors if t.name != "blk.1.attn_q.weight"])
    ),
    "query rows off": _parts(
        _tensor(
            "blk.0.attn_q.weight",
            lambda t: (t.dims.__setitem__(1, 32), setattr(t, "data", t.data[: len(t.data) // 2])),
        )
    ),
    # Hugging Face directories.
    "empty directory": _hf(lambda d: [p.unlink() for p in d.iterdir()]),
    "directory without weights": _hf(lambda d: (d / "model.safetensors").unlink()),
    "directory with pickled .bin": _hf(
        lambda d: (
            (d / "model.safetensors").unlink(),
            (d / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01."),
        )
    ),
    "no config.json": _hf(lambda d: (d / "config.json").unlink()),
    "config.json a list": _config(lambda c: [c]),
    "config.json a number": _config(lambda c: 7),
    "config.json not JSON": _config(lambda c: "{not json"),
    "config.json 100000 deep": _config(lambda c: "[" * 100000 + "]" * 100000),
    "config.json zero heads": _config(lambda c: c.update(num_attention_heads=0)),
    "config.json huge hidden size": _config(lambda c: c.update(hidden_size=1 << 40)),
    "config.json NaN eps": _config(lambda c: json.dumps(c)[:-1] + ', "rms_norm_eps": NaN}'),
    "config.json -1 layers": _config(lambda c: c.update(num_hidden_layers=-1)),
    "config.json layers a string": _config(lambda c: c.update(num_hidden_layers="2")),
    "config.json no model_type": _config(lambda c: c.pop("model_type") and None),
    "config.json eos a string": _config(lambda c: c.update(eos_token_id="</s>")),
    "config.json rope_scaling a list": _config(lambda c: c.update(rope_scaling=[1])),
    "config.json bigger than the weights": _config(lambda c: c.update(hidden_size=128)),
    "config.json not UTF-8": _hf(lambda d: (d / "config.json").write_bytes(b"\xff\xfe{}")),
    "truncated safetensors": _hf(
        lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000])
    ),
    "safetensors header of 2^60 bytes": _hf(
        lambda d: (d / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 60) + b"{}")
    ),
    "no tokenizer": _hf(lambda d: [p.unlink() for p in d.iterdir() if "token" in p.name]),
    "corrupt tokenizer.json": _hf(lambda d: (d / "tokenizer.json").write_text('{"model": 5}')),
}


def run_cli(model: Path, source: Path, cache: Path) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in KiB) of one `complete` under the address-space cap."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT_BYTES, AS_LIMIT_BYTES))

    env = {**os.environ, "CODEGEEX_LSP_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "codegeex_lsp.cli", "complete", str(source), "--line", "1",
               "--character", "4", "--model", str(model), "--dtype", "float32", "--quant", "none", "--threads", "1",
               "--max-tokens", "4"]  # fmt: skip
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env, preexec_fn=cap
        )
        try:
            proc.wait(HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -999, "hung", 0
        err.seek(0)
        text = err.read().decode(errors="replace")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc.returncode, text, usage.ru_maxrss


@pytest.fixture(scope="module")
def base(tiny_model_factory, tmp_path_factory):
    """The tiny qwen2 model as a HF directory and as a GGUF (bytes and parts)."""
    hf = tiny_model_factory("qwen2")
    path = tmp_path_factory.mktemp("base") / "tiny.gguf"
    write_tiny_gguf(hf, path)
    return hf, path.read_bytes(), parse_base(path)


def test_the_raw_writer_reproduces_a_loadable_model(base, tmp_path):
    hf, raw, parts = base
    assert parts.render() == raw  # byte for byte: the writer adds nothing of its own
    source = tmp_path / "add.py"
    source.write_text(SOURCE)
    rendered = _file(tmp_path, "again.gguf", parts.render())
    for model in (rendered, hf):  # the unmutated inputs work, so each case breaks only by its mutation
        code, stderr, _ = run_cli(model, source, tmp_path / "cache")
        assert code == 0, stderr[-2000:]


def test_every_hostile_model_gives_one_error_line_and_exit_2(base, tmp_path):
    hf, raw, parts = base
    source = tmp_path / "add.py"
    source.write_text(SOURCE)

    def attempt(item: tuple[str, Case]) -> tuple[str, int, str]:
        name, make = item
        directory = tmp_path / name.replace(" ", "_").replace("/", "_")
        directory.mkdir()
        model = make(directory, raw, parts, hf)
        code, stderr, _ = run_cli(model, source, directory / "cache")
        return name, code, stderr

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(attempt, CASES.items()))
    failures = []
    for name, code, stderr in results:
        lines = [
            line for line in stderr.splitlines() if line.strip() and not line.startswith("[codegeex-lsp] ")
        ]
        print(f"{name}: exit {code}: {lines[-1][:200] if lines else ''}")  # the outcomes, shown with -s
        if code != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or "Traceback" in stderr:
            failures.append(f"{name}: exit {code}\n{stderr[-1500:]}")
    assert len(CASES) >= 40
    assert not failures, f"{len(failures)} of {len(CASES)} hostile models:\n" + "\n---\n".join(failures)
