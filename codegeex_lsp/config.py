"""Frozen defaults and the on-disk locations this package owns.

The cache dir holds the assembled embedded GGUF and converted checkpoints. Users override it with
`--cache-dir` or `CODEGEEX_LSP_CACHE`; otherwise it follows XDG. The runtime dir holds the shared
model workers' sockets and tokens (`CODEGEEX_LSP_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/codegeex-lsp`,
else `/tmp/codegeex-lsp-<uid>`); it is private to the user (0700, checked on every use). The state
dir holds the local telemetry counts (`CODEGEEX_LSP_STATE`, else `$XDG_STATE_HOME/codegeex-lsp`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from codegeex_lsp.errors import CodegeexError

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
"""Name of the embedded default model (see engine/embedded.py)."""


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The directory for models and converted checkpoints, created on first use."""
    if override:
        path = Path(override)
    elif os.environ.get("CODEGEEX_LSP_CACHE"):
        path = Path(os.environ["CODEGEEX_LSP_CACHE"])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "codegeex-lsp"
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def runtime_dir() -> Path:
    """The per-user directory for worker sockets and tokens, created 0700 and verified private.

    Refuses (CodegeexError) a directory another user owns, or a symlink: in a shared /tmp, someone
    else could have created it first to read our tokens or plant a socket.
    """
    if os.environ.get("CODEGEEX_LSP_RUNTIME_DIR"):
        path = Path(os.environ["CODEGEEX_LSP_RUNTIME_DIR"]).expanduser()
    elif os.environ.get("XDG_RUNTIME_DIR") and _private_dir(Path(os.environ["XDG_RUNTIME_DIR"])):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "codegeex-lsp"
    else:
        path = Path("/tmp") / f"codegeex-lsp-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise CodegeexError(f"cannot create the runtime dir {path}: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise CodegeexError(
            f"runtime dir {path} is not a directory owned by you; remove it or set CODEGEEX_LSP_RUNTIME_DIR"
        )
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)  # ours, but too open (an old umask): tighten it before use
    return path


def _private_dir(path: Path) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def state_dir() -> Path:
    """The directory for local state (telemetry counts), created on first use."""
    if os.environ.get("CODEGEEX_LSP_STATE"):
        path = Path(os.environ["CODEGEEX_LSP_STATE"])
    else:
        base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        path = Path(base) / "codegeex-lsp"
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class EngineOptions:
    """How to load and run a model. One instance per process; never per request."""

    model: str = DEFAULT_MODEL
    dtype: str = "auto"  # auto | float32 | bfloat16
    quant: str = "int4"  # int4 (what users run) | none (float weights, for comparison)
    threads: int = 0  # 0: all cores torch sees
    trust_remote_code: bool = False
    cache_dir: str | None = None
    max_context_tokens: int = 4096
    # int4 rungs (engine.load.INT4_LADDER) a load builds when missing: "all" (then the top serves) or
    # "first" (only when none is built: one-shot commands; the server refines in the background).
    int4_build: str = "all"


@dataclass(frozen=True)
class CompletionOptions:
    """Per-completion knobs (from the CLI or from the client's configuration)."""

    format: str | None = None  # None: detect from the tokenizer/config
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    reference_tokens: int = 512  # cross-file references in the prompt (`context.referenceTokens`)
    seed: int | None = None
    # The cursor line's text after the middle token (`prompt.Budget.carry_line`): typing on a line
    # then reuses the KV cache of the whole previous prompt, suffix included.
    carry_line: bool = True
