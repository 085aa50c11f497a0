"""Calibration data for AWQ: real code available offline, and a hook-based activation collector.

The text is the Python standard library's own sources (`sysconfig.get_paths()["stdlib"]`), picked
deterministically; never benchmark problems. The collector records the inputs of every `nn.Linear`
of any `nn.Module` while the caller runs the model, so it works for the engine's model and for toy
modules in tests alike.
"""

from __future__ import annotations

import random
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

DEFAULT_MAX_ROWS = 2048  # activation rows kept per linear: enough for a stable mean |x| per channel


def stdlib_calibration_texts(n_texts: int = 16, max_chars: int = 4000, seed: int = 0) -> list[str]:
    """`n_texts` snippets of real Python from the standard library, each at most `max_chars`.

    Deterministic for a given Python installation and seed. Test suites are skipped (they are code,
    but repetitive), and so are files too short to be useful.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "dist-packages"}
    files = sorted(p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts))
    rng = random.Random(seed)
    rng.shuffle(files)
    texts: list[str] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) < max_chars // 4:
            continue
        start = rng.randrange(0, max(1, len(text) - max_chars))
        texts.append(text[start : start + max_chars])
        if len(texts) == n_texts:
            break
    if not texts:
        raise RuntimeError(f"no calibration sources found under {root}")
    return texts


class ActivationCollector:
    """Context manager recording the inputs of `nn.Linear` submodules: name -> [rows, in_features].

    Rows beyond `max_rows` per module are subsampled deterministically (every k-th row), so memory
    stays bounded on long calibration runs.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        include: Callable[[str, nn.Module], bool] | None = None,
    ) -> None:
        self.model = model
        self.max_rows = max_rows
        self.include = include or (lambda name, module: isinstance(module, nn.Linear))
        self._rows: dict[str, list[torch.Tensor]] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str):
        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            self._rows.setdefault(name, []).append(x.reshape(-1, x.shape[-1]).to("cpu", torch.float32))

        return record

    def __enter__(self) -> ActivationCollector:
        for name, module in self.model.named_modules():
            if name and self.include(name, module):
                self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def activations(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, chunks in self._rows.items():
            rows = torch.cat(chunks)
            if rows.shape[0] > self.max_rows:
                step = rows.shape[0] / self.max_rows
                rows = rows[(torch.arange(self.max_rows) * step).long()]
            out[name] = rows
        return out


@torch.inference_mode()
def collect_linear_inputs(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    forward: Callable[[nn.Module, Any], Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Run `model` on each batch (model(batch), or forward(model, batch)) and return every
    nn.Linear's inputs, name -> [rows, in_features] float32 — the `calibration` argument of
    `quantize_model_(..., mode="awq")`."""
    call = forward or (lambda m, b: m(b))
    with ActivationCollector(model, max_rows=max_rows) as collector:
        for batch in batches:
            call(model, batch)
    return collector.activations()
