"""llama.cpp's own int4 GEMV for `bench kernels`: ggml's mul_mat on Q4_0 / Q4_K weights, driven through
ctypes from the libraries llama-cpp-python installs, so no llama.cpp build and no GGUF file are needed.

Weights go where llama.cpp puts them when it loads a GGUF on this CPU: the CPU backend's "CPU_REPACK"
buffer (blocks interleaved 8 rows at a time for AVX2) when ggml repacks that type and shape, a plain CPU
buffer otherwise. The graph is built once and run by the CPU backend (`ggml_backend_graph_compute`, what
llama.cpp calls each token), so a timing includes ggml's per-call costs: graph plan, OpenMP fork/join and
the activation's quantization to Q8. Struct layouts follow the headers shipped with llama-cpp-python
0.3.36 (ggml 0.25); the tensor layout is checked against the library at load time.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import sys
from ctypes import POINTER, c_bool, c_char, c_char_p, c_int, c_int32, c_int64, c_size_t, c_void_p
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import torch

GGML_TYPE_F32 = 0
QTYPES: dict[str, int] = {"q4_0": 2, "q4_k": 12}  # name -> enum ggml_type (ggml.h)
REPACK_BUFT = "CPU_REPACK"
_OBJECT_SIZE = 32  # sizeof(struct ggml_object): offs, size, next, type + padding
_GRAPH_SIZE = 8
_LOG_SHOWN = (3, 4)  # enum ggml_log_level: NONE, DEBUG, INFO, WARN, ERROR, CONT


class GgmlUnavailable(RuntimeError):
    """llama-cpp-python is missing, or its ggml lacks a symbol or layout this module relies on."""


class _InitParams(ctypes.Structure):  # struct ggml_init_params, passed by value
    _fields_ = [("mem_size", c_size_t), ("mem_buffer", c_void_p), ("no_alloc", c_bool)]


class _Tensor(ctypes.Structure):  # struct ggml_tensor: MAX_DIMS 4, MAX_OP_PARAMS 64, MAX_SRC 10, MAX_NAME 64
    _fields_ = [
        ("type", c_int),
        ("buffer", c_void_p),
        ("ne", c_int64 * 4),
        ("nb", c_size_t * 4),
        ("op", c_int),
        ("op_params", c_int32 * 16),
        ("flags", c_int32),
        ("src", c_void_p * 10),
        ("view_src", c_void_p),
        ("view_offs", c_size_t),
        ("data", c_void_p),
        ("name", c_char * 64),
        ("extra", c_void_p),
        ("padding", c_char * 8),
    ]


class _TypeTraits(ctypes.Structure):  # struct ggml_type_traits
    _fields_ = [
        ("type_name", c_char_p),
        ("blck_size", c_int64),
        ("blck_size_interleave", c_int64),
        ("type_size", c_size_t),
        ("is_quantized", c_bool),
        ("to_float", c_void_p),
        ("from_float_ref", c_void_p),
    ]


_T = POINTER(_Tensor)
_P = c_void_p
_LOG_CB = ctypes.CFUNCTYPE(None, c_int, c_char_p, c_void_p)
_TO_FLOAT = ctypes.CFUNCTYPE(None, c_void_p, c_void_p, c_int64)
_GET_EXTRA_BUFTS = ctypes.CFUNCTYPE(POINTER(c_void_p), c_void_p)

# name -> (library, restype, argtypes), from ggml.h / ggml-backend.h / ggml-alloc.h / ggml-cpu.h
_SIGNATURES: dict[str, tuple[str, object, list[object]]] = {
    "ggml_init": ("base", _P, [_InitParams]),
    "ggml_free": ("base", None, [_P]),
    "ggml_tensor_overhead": ("base", c_size_t, []),
    "ggml_graph_overhead_custom": ("base", c_size_t, [c_size_t, c_bool]),
    "ggml_new_tensor_2d": ("base", _T, [_P, c_int, c_int64, c_int64]),
    "ggml_mul_mat": ("base", _T, [_P, _T, _T]),
    "ggml_new_graph_custom": ("base", _P, [_P, c_size_t, c_bool]),
    "ggml_build_forward_expand": ("base", None, [_P, _T]),
    "ggml_row_size": ("base", c_size_t, [c_int, c_int64]),
    "ggml_nbytes": ("base", c_size_t, [_T]),
    "ggml_quantize_chunk": ("base", c_size_t, [c_int, _P, _P, c_int64, c_int64, c_int64, _P]),
    "ggml_get_type_traits": ("base", POINTER(_TypeTraits), [c_int]),
    "ggml_status_to_string": ("base", c_char_p, [c_int]),
    "ggml_log_set": ("base", None, [_LOG_CB, _P]),
    "ggml_backend_alloc_ctx_tensors_from_buft": ("base", _P, [_P, _P]),
    "ggml_backend_buffer_free": ("base", None, [_P]),
    "ggml_backend_buft_name": ("base", c_char_p, [_P]),
    "ggml_backend_tensor_set": ("base", None, [_T, _P, c_size_t, c_size_t]),
    "ggml_backend_tensor_get": ("base", None, [_T, _P, c_size_t, c_size_t]),
    "ggml_backend_graph_compute": ("base", c_int, [_P, _P]),
    "ggml_backend_free": ("base", None, [_P]),
    "ggml_backend_cpu_buffer_type": ("base", _P, []),
    "ggml_backend_reg_dev_get": ("base", _P, [_P, c_size_t]),
    "ggml_backend_reg_get_proc_address": ("base", _P, [_P, c_char_p]),
    "ggml_cpu_init": ("cpu", None, []),
    "ggml_backend_cpu_init": ("cpu", _P, []),
    "ggml_backend_cpu_set_n_threads": ("cpu", None, [_P, c_int]),
    "ggml_backend_cpu_reg": ("cpu", _P, []),
}


@dataclass
class _Ggml:
    fn: dict[str, ctypes._CFuncPtr]
    lib_dir: Path
    repack_buft: int | None  # CPU_REPACK buffer type, when this CPU backend offers one


_loaded: _Ggml | None = None
_load_error: str | None = None


@_LOG_CB
def _log(level: int, text: bytes | None, _user: int | None) -> None:
    """ggml logs every repacked tensor at DEBUG on stderr; keep warnings and errors only."""
    if level in _LOG_SHOWN and text:
        print(text.decode(errors="replace"), end="", file=sys.stderr)


def library_dir() -> Path:
    """The `lib/` folder of the installed llama_cpp package, found without importing it."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise GgmlUnavailable("llama_cpp is not installed (pip install llama-cpp-python)")
    lib_dir = Path(spec.origin).parent / "lib"
    if not (lib_dir / "libggml-base.so").exists() or not (lib_dir / "libggml-cpu.so").exists():
        raise GgmlUnavailable(f"no libggml-base.so / libggml-cpu.so in {lib_dir}")
    return lib_dir


def _load() -> _Ggml:
    lib_dir = library_dir()
    libs = {}
    for key, name in (("base", "libggml-base.so"), ("cpu", "libggml-cpu.so")):  # dependency order
        try:
            libs[key] = ctypes.CDLL(str(lib_dir / name), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise GgmlUnavailable(f"cannot load {lib_dir / name}: {exc}") from exc
    fn: dict[str, ctypes._CFuncPtr] = {}
    for name, (lib, restype, argtypes) in _SIGNATURES.items():
        try:
            f = getattr(libs[lib], name)
        except AttributeError as exc:
            raise GgmlUnavailable(f"lib{lib} in {lib_dir} has no {name} (unsupported ggml version)") from exc
        f.restype, f.argtypes = restype, argtypes
        fn[name] = f
    if fn["ggml_tensor_overhead"]() != ctypes.sizeof(_Tensor) + _OBJECT_SIZE:
        raise GgmlUnavailable(
            f"struct ggml_tensor differs from this module's layout (ggml_tensor_overhead "
            f"{fn['ggml_tensor_overhead']()} != {ctypes.sizeof(_Tensor) + _OBJECT_SIZE})"
        )
    fn["ggml_log_set"](_log, None)
    fn["ggml_cpu_init"]()
    return _Ggml(fn=fn, lib_dir=lib_dir, repack_buft=_find_repack_buft(fn))


def _find_repack_buft(fn: dict[str, ctypes._CFuncPtr]) -> int | None:
    """The CPU device's extra buffer type named CPU_REPACK (the list also holds AMX / KleidiAI ones)."""
    reg = fn["ggml_backend_cpu_reg"]()
    dev = fn["ggml_backend_reg_dev_get"](reg, 0)
    addr = fn["ggml_backend_reg_get_proc_address"](reg, b"ggml_backend_dev_get_extra_bufts")
    if not addr or not dev:
        return None
    bufts = _GET_EXTRA_BUFTS(addr)(dev)
    i = 0
    while bufts and bufts[i]:
        if fn["ggml_backend_buft_name"](bufts[i]) == REPACK_BUFT.encode():
            return int(bufts[i])
        i += 1
    return None


def ggml() -> _Ggml:
    """The bound libraries, loaded once; raises GgmlUnavailable with the reason otherwise."""
    global _loaded, _load_error
    if _loaded is None:
        if _load_error is not None:
            raise GgmlUnavailable(_load_error)
        try:
            _loaded = _load()
        except GgmlUnavailable as exc:
            _load_error = str(exc)
            raise
    return _loaded


def unavailable_reason() -> str | None:
    try:
        ggml()
    except GgmlUnavailable as exc:
        return str(exc)
    return None


def block_size(qtype: str) -> int:
    """Elements per quantization block along K: 32 for Q4_0, 256 for the Q4_K super-block."""
    return {"q4_0": 32, "q4_k": 256}[qtype]


def quantized_bytes(qtype: str, n: int, k: int) -> int:
    """Bytes of an [n, k] weight in `qtype` (ggml_row_size x rows)."""
    return int(ggml().fn["ggml_row_size"](QTYPES[qtype], k)) * n


def describe() -> str:
    """Which llama.cpp runs, and how, for the benchmark's header."""
    g = ggml()
    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    where = (
        f"{REPACK_BUFT} where ggml repacks the shape" if g.repack_buft else "plain CPU buffers (no repack)"
    )
    return f"llama-cpp-python {version} ggml ({g.lib_dir}), CPU backend, weights in {where}"


def check_shape(qtype: str, n: int, k: int) -> str | None:
    """Why ggml cannot hold an [n, k] weight as `qtype`, or None when it can."""
    if qtype not in QTYPES:
        return f"unknown ggml type {qtype!r}; choose from {sorted(QTYPES)}"
    if n < 1 or k < 1:
        return f"empty weight [{n}, {k}]"
    if k % block_size(qtype):
        return f"{qtype} needs in_features divisible by {block_size(qtype)}, got K={k}"
    return None


class GgmlGemv:
    """y = x @ W.T by ggml for a weight W [N, K] quantized to `qtype`, ready to be run again and again.

    `copies` > 1 holds that many copies of the quantized weight and cycles through them (`bench kernels
    --cold`). Call `set_input(x)` once, then `run()`; `output()` reads the last result back as [rows, N].
    """

    def __init__(
        self,
        weight: torch.Tensor,
        qtype: str = "q4_0",
        rows: int = 1,
        n_threads: int = 1,
        copies: int = 1,
        repack: bool = True,
    ) -> None:
        if weight.dim() != 2:
            raise ValueError(f"weight must be 2-D [N, K], got shape {tuple(weight.shape)}")
        n, k = weight.shape
        problem = check_shape(qtype, n, k)
        if problem:
            raise ValueError(problem)
        if rows < 1 or n_threads < 1 or copies < 1:
            raise ValueError(f"rows, n_threads and copies must be >= 1 (got {rows}, {n_threads}, {copies})")
        self.n, self.k, self.rows, self.qtype = n, k, rows, qtype
        self._g = ggml()
        self._fn = self._g.fn
        self._ctxs: list[int] = []
        self._buffers: list[int] = []
        self._backend: int | None = None
        self._i = 0
        try:
            self._build(weight, copies, repack, n_threads)
        except BaseException:
            self.close()
            raise

    def _build(self, weight: torch.Tensor, copies: int, repack: bool, n_threads: int) -> None:
        fn, gtype = self._fn, QTYPES[self.qtype]
        self.quantized = self._quantize(weight)  # uint8, ggml's row-major block layout
        overhead = fn["ggml_tensor_overhead"]()
        ctx_w = self._context(overhead * copies + 1024)
        self._weights = [fn["ggml_new_tensor_2d"](ctx_w, gtype, self.k, self.n) for _ in range(copies)]
        ctx_io = self._context(
            overhead * (copies + 1) + fn["ggml_graph_overhead_custom"](_GRAPH_SIZE, False) * copies + 1024
        )
        self._x = fn["ggml_new_tensor_2d"](ctx_io, GGML_TYPE_F32, self.k, self.rows)  # [M, K], ne = (K, M)
        if tuple(self._weights[0].contents.ne[:2]) != (self.k, self.n):
            raise GgmlUnavailable("struct ggml_tensor layout mismatch: ne[] does not read back")
        self._outs, self._graphs = [], []
        for w in self._weights:
            out = fn["ggml_mul_mat"](ctx_io, w, self._x)  # ne = (N, M): rows of x times rows of W
            graph = fn["ggml_new_graph_custom"](ctx_io, _GRAPH_SIZE, False)
            fn["ggml_build_forward_expand"](graph, out)
            self._outs.append(out)
            self._graphs.append(graph)
        self.buffer_type = self._alloc_weights(ctx_w, repack)
        self._alloc(ctx_io, fn["ggml_backend_cpu_buffer_type"]())
        src = self.quantized.data_ptr()
        for w in self._weights:
            fn["ggml_backend_tensor_set"](w, src, 0, self.quantized.numel())  # repacks in CPU_REPACK
        self._backend = fn["ggml_backend_cpu_init"]()
        if not self._backend:
            raise GgmlUnavailable("ggml_backend_cpu_init failed")
        fn["ggml_backend_cpu_set_n_threads"](self._backend, n_threads)
        self.n_threads = n_threads

    def _quantize(self, weight: torch.Tensor) -> torch.Tensor:
        fn, gtype = self._fn, QTYPES[self.qtype]
        w = weight.detach().to(device="cpu", dtype=torch.float32).contiguous()
        row_bytes = fn["ggml_row_size"](gtype, self.k)
        out = torch.empty(row_bytes * self.n, dtype=torch.uint8)
        written = fn["ggml_quantize_chunk"](gtype, w.data_ptr(), out.data_ptr(), 0, self.n, self.k, None)
        if written != out.numel():
            raise RuntimeError(f"ggml_quantize_chunk wrote {written} bytes, expected {out.numel()}")
        return out

    def _context(self, mem_size: int) -> int:
        # no_alloc: tensor data lives in backend buffers
        ctx = self._fn["ggml_init"](_InitParams(mem_size, None, True))
        if not ctx:
            raise RuntimeError("ggml_init failed")
        self._ctxs.append(ctx)
        return ctx

    def _alloc(self, ctx: int, buft: int) -> None:
        buf = self._fn["ggml_backend_alloc_ctx_tensors_from_buft"](ctx, buft)
        if not buf:
            raise RuntimeError("ggml_backend_alloc_ctx_tensors_from_buft failed")
        self._buffers.append(buf)

    def _alloc_weights(self, ctx_w: int, repack: bool) -> str:
        """CPU_REPACK when ggml picks a repacked layout for this tensor (it sets `extra` then), else CPU:
        storing into CPU_REPACK a tensor it cannot repack would crash in ggml."""
        fn, buft = self._fn, self._g.repack_buft
        if repack and buft is not None:
            self._alloc(ctx_w, buft)
            if all(w.contents.extra for w in self._weights):
                return REPACK_BUFT
            fn["ggml_backend_buffer_free"](self._buffers.pop())
            for w in self._weights:  # detach from the freed buffer before allocating again
                w.contents.buffer = w.contents.data = w.contents.extra = None
        self._alloc(ctx_w, fn["ggml_backend_cpu_buffer_type"]())
        return fn["ggml_backend_buft_name"](fn["ggml_backend_cpu_buffer_type"]()).decode()

    def set_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape) != (self.rows, self.k):
            raise ValueError(f"x must be [{self.rows}, {self.k}], got {tuple(x.shape)}")
        xc = x.detach().to(device="cpu", dtype=torch.float32).contiguous()
        self._fn["ggml_backend_tensor_set"](self._x, xc.data_ptr(), 0, xc.numel() * 4)

    def run(self) -> None:
        """One mul_mat through the CPU backend, on the next weight copy."""
        self._i = (self._i + 1) % len(self._graphs)
        status = self._fn["ggml_backend_graph_compute"](self._backend, self._graphs[self._i])
        if status != 0:
            raise RuntimeError(
                f"ggml_backend_graph_compute: {self._fn['ggml_status_to_string'](status).decode()}"
            )

    def output(self) -> torch.Tensor:
        y = torch.empty(self.rows, self.n, dtype=torch.float32)
        self._fn["ggml_backend_tensor_get"](self._outs[self._i], y.data_ptr(), 0, y.numel() * 4)
        return y

    def dequantized(self) -> torch.Tensor:
        """The weight as ggml stores it, back in fp32 [N, K] (its reference to_float)."""
        traits = self._fn["ggml_get_type_traits"](QTYPES[self.qtype]).contents
        if not traits.to_float:
            raise GgmlUnavailable(f"ggml has no to_float for {self.qtype}")
        y = torch.empty(self.n, self.k, dtype=torch.float32)
        _TO_FLOAT(traits.to_float)(self.quantized.data_ptr(), y.data_ptr(), self.n * self.k)
        return y

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.set_input(x)
        self.run()
        return self.output()

    def close(self) -> None:
        """Free the backend, the buffers and the contexts (idempotent)."""
        fn = self._fn
        if self._backend:
            fn["ggml_backend_free"](self._backend)
            self._backend = None
        while self._buffers:
            fn["ggml_backend_buffer_free"](self._buffers.pop())
        while self._ctxs:
            fn["ggml_free"](self._ctxs.pop())

    def __enter__(self) -> GgmlGemv:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def gemv(
    weight: torch.Tensor, x: torch.Tensor, qtype: str = "q4_0", n_threads: int = 1, repack: bool = True
) -> torch.Tensor:
    """x [M, K] @ W [N, K].T by ggml on `qtype` weights, once: [M, N]."""
    with GgmlGemv(weight, qtype, rows=x.shape[0], n_threads=n_threads, repack=repack) as op:
        return op(x)
