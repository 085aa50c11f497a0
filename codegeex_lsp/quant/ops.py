"""The int4 ops and the choice of kernel behind them: `ref` (PyTorch), `cpp` (C++), `triton` (CUDA).

`torch.ops.codegeex_lsp.int4_gemm(x, packed, in_features, group_size, bias, residual)` and
`torch.ops.codegeex_lsp.int4_dequantize(packed, in_features, group_size)` always exist once this
module is imported: the C++ extension `codegeex_lsp._kernels` registers their CPU kernels; without it
the same schemas are defined here with the reference as the CPU kernel. Fake (meta) kernels are
registered here either way, and the CUDA kernel is the Triton one when triton imports.

The kernel is picked per call: the `kernel` argument, else `CODEGEEX_LSP_KERNEL`, else `cpp`. The C++
kernels hold three CPU paths (see kernels/cpu/int4_kernels.h): `ref` (scalar), `avx2` and `avx512`
(VNNI); the best one the CPU runs is active unless `CODEGEEX_LSP_CPU_KERNEL` (or `set_cpu_path`)
forces one. A missing extension is an error (the install must build it), except when kernels were
skipped on purpose with `CODEGEEX_LSP_NO_KERNELS=1`: then the slow PyTorch reference runs, with one
loud warning per process.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

from codegeex_lsp.quant.packing import LAYOUT_VERSION, dequantize_packed, row_bytes

log = logging.getLogger(__name__)

KERNELS: tuple[str, ...] = ("ref", "cpp", "triton")
KERNEL_ENV = "CODEGEEX_LSP_KERNEL"
CPU_PATHS: tuple[str, ...] = ("ref", "avx2", "avx512")  # the C++ paths, slowest first
CPU_KERNEL_ENV = "CODEGEEX_LSP_CPU_KERNEL"  # auto | one of CPU_PATHS
NO_KERNELS_ENV = "CODEGEEX_LSP_NO_KERNELS"

_GEMM_SCHEMA = (
    "int4_gemm(Tensor x, Tensor packed, int in_features, int group_size, Tensor? bias=None,"
    " Tensor? residual=None) -> Tensor"
)
_DEQUANT_SCHEMA = "int4_dequantize(Tensor packed, int in_features, int group_size) -> Tensor"


class KernelFallbackWarning(RuntimeWarning):
    """The fast kernels were skipped on purpose; the (slow) PyTorch reference runs instead."""


class KernelsMissingError(RuntimeError):
    """codegeex_lsp._kernels did not load although nobody asked to skip it: a broken install."""


# --- the reference kernels -------------------------------------------------------------------------


def int4_gemm_ref(
    x: torch.Tensor,
    packed: torch.Tensor,
    in_features: int,
    group_size: int,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """x [..., K] @ W.T + bias in fp32, returned in x's dtype. [..., N]

    W = dequantize(packed), plus dequantize(residual) when a second plane is given (added as a
    separate product)."""
    w = dequantize_packed(packed, in_features, group_size)  # [N, K]
    b = None if bias is None else bias.to(torch.float32)
    y = torch.nn.functional.linear(x.to(torch.float32), w.to(x.device), b)
    if residual is not None:
        w2 = dequantize_packed(residual, in_features, group_size)
        y = y + torch.nn.functional.linear(x.to(torch.float32), w2.to(x.device))
    return y.to(x.dtype)


def _gemm_fake(x, packed, in_features, group_size, bias=None, residual=None):
    return x.new_empty((*x.shape[:-1], packed.shape[0]))


def _dequant_fake(packed, in_features, group_size):
    return packed.new_empty((packed.shape[0], in_features), dtype=torch.float32)


# --- extension loading and op registration --------------------------------------------------------

_extension: ModuleType | None = None
_extension_error: str | None = None
_cpu_path_error: str | None = None
_fallback_lib: torch.library.Library | None = None
_warned_fallback = False


def kernels_skipped() -> bool:
    """Whether the user asked to run without the compiled kernels (CODEGEEX_LSP_NO_KERNELS=1)."""
    return os.environ.get(NO_KERNELS_ENV) == "1"


def _load_extension() -> None:
    global _extension, _extension_error, _fallback_lib, _cpu_path_error
    if kernels_skipped():
        _extension_error = f"disabled by {NO_KERNELS_ENV}=1"
    else:
        try:
            _extension = importlib.import_module("codegeex_lsp._kernels")
        except ImportError as exc:
            _extension_error = f"{type(exc).__name__}: {exc}"
        else:
            if _extension.LAYOUT_VERSION != LAYOUT_VERSION:
                _extension_error = (
                    f"codegeex_lsp._kernels was built for layout v{_extension.LAYOUT_VERSION}, "
                    f"this package packs v{LAYOUT_VERSION}; rebuild it (pip install -e .)"
                )
                _extension = None
    if _extension is not None:
        try:
            set_cpu_path(os.environ.get(CPU_KERNEL_ENV) or "auto")
        except ValueError as exc:
            _cpu_path_error = f"{exc} (from {CPU_KERNEL_ENV})"
    if not hasattr(torch.ops.codegeex_lsp, "int4_gemm"):
        _fallback_lib = torch.library.Library("codegeex_lsp", "FRAGMENT")
        _fallback_lib.define(_GEMM_SCHEMA)
        _fallback_lib.define(_DEQUANT_SCHEMA)
        _fallback_lib.impl("int4_gemm", int4_gemm_ref, "CPU")
        _fallback_lib.impl("int4_dequantize", dequantize_packed, "CPU")
    torch.library.register_fake("codegeex_lsp::int4_gemm")(_gemm_fake)
    torch.library.register_fake("codegeex_lsp::int4_dequantize")(_dequant_fake)
    if triton_available():
        torch.library.impl("codegeex_lsp::int4_gemm", "CUDA")(_gemm_triton)
        torch.library.impl("codegeex_lsp::int4_dequantize", "CUDA")(dequantize_packed)


def extension() -> ModuleType | None:
    """The compiled CPU kernels, or None (see `extension_error`)."""
    return _extension


def extension_error() -> str | None:
    """Why the compiled kernels are unavailable (None when they loaded)."""
    return _extension_error


def set_cpu_path(name: str) -> str:
    """Make `name` (auto or one of CPU_PATHS) the path of the default C++ ops; returns the path now
    active. ValueError for an unknown name or one this CPU (or build) cannot run."""
    if _extension is None:
        raise KernelsMissingError(f"codegeex_lsp._kernels is not loaded ({_extension_error})")
    if name != "auto" and name not in CPU_PATHS:
        raise ValueError(f"unknown CPU kernel path {name!r}; expected auto or one of {CPU_PATHS}")
    try:
        return str(_extension.set_path(name))
    except RuntimeError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


def cpu_path() -> str | None:
    """The C++ path the default ops run now (ref, avx2, avx512), or None without the extension."""
    return None if _extension is None else str(_extension.active_path())


def supported_cpu_paths() -> list[str]:
    """The C++ paths this build holds and this CPU runs, slowest first ([] without the extension)."""
    return [] if _extension is None else [str(p) for p in _extension.supported_paths()]


def kernel_label(kernel: str | None = None) -> str:
    """What a call with `kernel` runs, for reports: "cpp/avx512", "ref (PyTorch)", "triton" ...;
    never raises (a misconfiguration is reported in the label)."""
    try:
        name = resolve_kernel(kernel)
    except (ValueError, KernelsMissingError) as exc:
        return f"unusable ({exc})"
    if name == "cpp":
        return f"cpp/{cpu_path()}"
    return "ref (PyTorch)" if name == "ref" else name


# --- Triton ---------------------------------------------------------------------------------------


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_module() -> ModuleType:
    """`codegeex_lsp.triton_kernels.int4_triton`; in a checkout that is not pip-installed, the same
    file from kernels/triton/ (setup.py maps that folder to codegeex_lsp.triton_kernels)."""
    name = "codegeex_lsp.triton_kernels.int4_triton"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        if name in sys.modules:
            return sys.modules[name]
        path = Path(__file__).resolve().parents[2] / "kernels" / "triton" / "int4_triton.py"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None or not path.exists():
            raise
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module


def _gemm_triton(x, packed, in_features, group_size, bias=None, residual=None):
    y = triton_module().int4_gemm(x, packed, in_features, group_size, bias)
    if residual is not None:
        y = y + triton_module().int4_gemm(x, residual, in_features, group_size, None)
    return y


# --- dispatch -------------------------------------------------------------------------------------


def _warn_fallback(reason: str) -> None:
    global _warned_fallback
    if _warned_fallback:
        return
    _warned_fallback = True
    message = (
        f"codegeex_lsp: int4 CPU kernels unavailable ({reason}); running the PyTorch reference, which is "
        f"several times slower. Unset {NO_KERNELS_ENV} and reinstall (pip install -e .) to build them."
    )
    log.warning(message)
    warnings.warn(message, KernelFallbackWarning, stacklevel=3)


def resolve_kernel(kernel: str | None = None) -> str:
    """The kernel a call will use: argument > CODEGEEX_LSP_KERNEL > cpp. Without the extension, cpp is
    KernelsMissingError unless CODEGEEX_LSP_NO_KERNELS=1 asked for that (then ref, warned once)."""
    name = kernel or os.environ.get(KERNEL_ENV) or "cpp"
    if name not in KERNELS:
        raise ValueError(f"unknown int4 kernel {name!r} (from {KERNEL_ENV} or argument); expected {KERNELS}")
    if name == "cpp" and _extension is None:
        if not kernels_skipped():
            raise KernelsMissingError(
                f"codegeex_lsp._kernels did not load ({_extension_error}): the install is broken. Reinstall "
                f"with a C++ compiler (pip install -e .), or set {NO_KERNELS_ENV}=1 to run the slow PyTorch "
                "reference on purpose."
            )
        _warn_fallback(_extension_error or "not built")
        return "ref"
    if name == "cpp" and _cpu_path_error:
        raise ValueError(_cpu_path_error)
    return name


def int4_gemm(
    x: torch.Tensor,
    packed: torch.Tensor,
    in_features: int,
    group_size: int,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    *,
    kernel: str | None = None,
) -> torch.Tensor:
    """y [..., N] = x [..., K] @ W.T + bias for a packed int4 W [N, K], in x's dtype.

    `residual`, a second packed plane of the same shape, makes W = W1 + W2: the C++ kernels take both
    planes in one pass (one accumulator per output), the reference and Triton add two products."""
    name = resolve_kernel(kernel)
    if name == "ref":
        return int4_gemm_ref(x, packed, in_features, group_size, bias, residual)
    if name == "triton":
        return _gemm_triton(x, packed, in_features, group_size, bias, residual)
    return _gemm_op(x, packed, in_features, group_size, bias, residual)


def int4_dequantize(
    packed: torch.Tensor, in_features: int, group_size: int, *, kernel: str | None = None
) -> torch.Tensor:
    """packed [N, row_bytes] -> float32 [N, K]."""
    if packed.shape[-1] != row_bytes(in_features, group_size):
        raise ValueError(
            f"packed rows of {packed.shape[-1]} bytes do not fit K={in_features}, G={group_size}"
        )
    if resolve_kernel(kernel) == "cpp" and packed.device.type == "cpu":
        return torch.ops.codegeex_lsp.int4_dequantize(packed, in_features, group_size)
    return dequantize_packed(packed, in_features, group_size)


_load_extension()
# The overload itself: calling it skips the packet's overload resolution (a few µs per call, which
# adds up over ~170 linears per decoded token).
_gemm_op = torch.ops.codegeex_lsp.int4_gemm.default
