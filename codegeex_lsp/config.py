"""Frozen defaults and the on-disk locations this package owns.

The cache dir holds the assembled embedded GGUF and converted checkpoints. Users override it with
`--cache-dir` or `CODEGEEX_LSP_CACHE`; otherwise it follows XDG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class EngineOptions:
    """How to load and run a model. One instance per process; never per request."""

    model: str = DEFAULT_MODEL
    dtype: str = "auto"  # auto | float32 | bfloat16
    quant: str = "none"  # none | int4
    threads: int = 0  # 0: all cores torch sees
    trust_remote_code: bool = False
    cache_dir: str | None = None
    max_context_tokens: int = 4096


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
    seed: int | None = None
