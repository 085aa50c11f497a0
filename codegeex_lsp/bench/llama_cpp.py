"""llama.cpp, the peer: where its binaries are, and its Q4_0 requantization of the embedded GGUF.

`scripts/install-llama-cpp` builds llama-server, llama-bench and llama-quantize once per host CPU into
`<cache>/llama.cpp/<version>-<key>/bin` (a native build only runs on the CPU it was built for, so the
build records the host's /proc/cpuinfo flags and only a build for these flags is used here).
`CODEGEEX_LSP_LLAMA_ISA=avx2 scripts/install-llama-cpp` adds the portable AVX2 build (marked `isa`),
what llama.cpp runs on an AVX2-only host; `isa="avx2"` below finds it.
`CODEGEEX_LLAMA_CPP_BIN` points at another build's bin directory instead (native only).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from codegeex_lsp.config import cache_dir

BIN_ENV = "CODEGEEX_LLAMA_CPP_BIN"
INSTALL_HINT = "run scripts/install-llama-cpp (make test does)"
ISAS: tuple[str, ...] = ("native", "avx2")  # the kinds of build scripts/install-llama-cpp makes


class LlamaCppMissing(RuntimeError):
    """No usable llama.cpp build: the message says why and how to get one."""


def host_cpu_flags() -> str:
    """The host's CPU flags, sorted, as scripts/install-llama-cpp records them."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return " ".join(sorted(line.split(":", 1)[1].split()))
    return ""


def install_hint(isa: str = "native") -> str:
    """How to make the `isa` build."""
    return INSTALL_HINT if isa == "native" else f"run CODEGEEX_LSP_LLAMA_ISA={isa} scripts/install-llama-cpp"


def bin_dir(cache: str | None = None, isa: str = "native") -> Path:
    """The bin directory of a llama.cpp build made for this host's CPU, or of the portable `isa` build:
    the newest build whose marker says so (a native build records the CPU flags it was made on, a
    portable one its ISA)."""
    if isa not in ISAS:
        raise ValueError(f"unknown llama.cpp build {isa!r}; expected one of {ISAS}")
    if isa == "native" and (env := os.environ.get(BIN_ENV)):
        path = Path(env)
        if not path.is_dir():
            raise LlamaCppMissing(f"{BIN_ENV}={env} is not a directory")
        return path
    if isa == "native":
        marker, wanted, program = "cpu-flags", host_cpu_flags(), "llama-server"
    else:
        marker, wanted, program = "isa", isa, "llama-bench"
    builds = sorted((cache_dir(cache) / "llama.cpp").glob("*/bin"), key=lambda p: p.stat().st_mtime)
    for path in reversed(builds):
        recorded = path.parent / marker
        if recorded.is_file() and recorded.read_text().strip() == wanted and (path / program).is_file():
            return path
    if isa != "native":
        raise LlamaCppMissing(f"no {isa} build of llama.cpp: {install_hint(isa)}")
    if builds:
        raise LlamaCppMissing(f"no llama.cpp build for this host's CPU flags: {INSTALL_HINT}")
    raise LlamaCppMissing(f"llama.cpp is not built: {INSTALL_HINT}")


def binary(name: str, cache: str | None = None, isa: str = "native") -> Path:
    """A llama.cpp program (llama-server, llama-bench, llama-quantize) of the host's (or `isa`) build."""
    path = bin_dir(cache, isa) / name
    if not path.is_file():
        raise LlamaCppMissing(f"{path} is missing: {install_hint(isa)}")
    return path


def run_env(cache: str | None = None, isa: str = "native") -> dict[str, str]:
    """Environment for the programs: their shared libraries sit beside them."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        filter(None, [str(bin_dir(cache, isa)), env.get("LD_LIBRARY_PATH")])
    )
    return env


def quantized(gguf: Path, qtype: str = "Q4_0", cache: str | None = None, threads: int = 2) -> Path:
    """`gguf` requantized to `qtype` by llama-quantize, made once beside the cache's models.

    The source is already quantized (Q5_0 mostly), hence --allow-requantize: the same path a user of
    llama.cpp takes to get a Q4_0 file from the only GGUF they have.
    """
    out = cache_dir(cache) / "models" / f"{gguf.stem}.{qtype.lower()}.gguf"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    proc = subprocess.run(
        [
            str(binary("llama-quantize", cache)),
            "--allow-requantize",
            str(gguf),
            str(tmp),
            qtype,
            str(threads),
        ],
        capture_output=True,
        text=True,
        env=run_env(cache),
    )
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise LlamaCppMissing(f"llama-quantize {qtype} failed: {proc.stderr.strip()[-500:]}")
    os.replace(tmp, out)
    return out
