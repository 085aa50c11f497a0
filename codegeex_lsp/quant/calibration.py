"""Calibration data for AWQ and GPTQ: real code available offline, and hook-based collectors.

The text is the Python standard library's own sources (`sysconfig.get_paths()["stdlib"]`), picked
deterministically; never benchmark problems. Besides plain snippets, `fim_cut` masks whole lines
of such a file, so calibration can also run the prompts a completion backend actually sends.
The collectors record, for every `nn.Linear` of any `nn.Module` while the caller runs the model,
either its input rows (AWQ) or the running Hessian `sum x x^T` of its inputs (GPTQ), so they work
for the engine's model and toy modules alike.
"""

from __future__ import annotations

import random
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

MIN_FILE_CHARS = 1000  # shorter stdlib files teach little
DEFAULT_MAX_ROWS = 2048  # activation rows kept per linear: enough for a stable mean |x| per channel


def stdlib_calibration_sources(n_texts: int = 16, seed: int = 0, skip_first: int = 0) -> list[tuple[Path, str]]:
    """(path, text) of `n_texts` standard-library files in a fixed shuffled order, after the first
    `skip_first` of that order (held-out sets skip the calibration set's files this way).

    Deterministic for a given Python installation and seed. Test suites are skipped (they are code,
    but repetitive), and so are files too short to be useful.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "dist-packages"}
    files = sorted(p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts))
    random.Random(seed).shuffle(files)
    found: list[tuple[Path, str]] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) >= MIN_FILE_CHARS:
            found.append((path, text))
            if len(found) == skip_first + n_texts:
                break
    if len(found) <= skip_first:
        raise RuntimeError(f"no calibration sources found under {root}")
    return found[skip_first:]


def stdlib_calibration_texts(
    n_texts: int = 16, max_chars: int = 4000, seed: int = 0, skip_first: int = 0
) -> list[str]:
    """`n_texts` snippets of real Python from the standard library, each at most `max_chars`, one
    per file of `stdlib_calibration_sources`, from a deterministic offset."""
    rng = random.Random(seed)
    texts: list[str] = []
    for _path, text in stdlib_calibration_sources(n_texts, seed, skip_first):
        start = rng.randrange(0, max(1, len(text) - max_chars))
        texts.append(text[start : start + max_chars])
    return texts


@dataclass(frozen=True)
class FimCut:
    """A file split around a masked middle: `prefix + middle + suffix` is a slice of the file."""

    prefix: str
    middle: str
    suffix: str


def fim_cut(
    text: str, rng: random.Random, max_lines: int = 6, max_prefix_chars: int = 2000, max_suffix_chars: int = 800
) -> FimCut | None:
    """Mask 1 (most often) to `max_lines` whole lines, starting after the first line's indentation,
    where an editor's cursor sits when a line is to be written; None if `text` has no such line.

    Why: int4 weights fitted on plain text alone shift the model's low-margin FIM decisions (close
    the scope or fill the line) far more than plain-text perplexity shows.
    """
    lines = text.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if i >= 8 and len(line.strip()) > 3]
    if not candidates:
        return None
    first = rng.choice(candidates)
    count = 1 if rng.random() < 0.6 else rng.randint(2, max_lines)
    indent = len(lines[first]) - len(lines[first].lstrip())
    prefix = "".join(lines[:first]) + lines[first][:indent]
    middle = lines[first][indent:] + "".join(lines[first + 1 : first + count])
    suffix = "".join(lines[first + count :])
    return FimCut(prefix[-max_prefix_chars:], middle, suffix[:max_suffix_chars])


def stdlib_fim_cuts(n_texts: int = 16, seed: int = 0, skip_first: int = 0) -> list[FimCut]:
    """One `fim_cut` per file of `stdlib_calibration_sources` (same files, same order)."""
    rng = random.Random(seed + 1)
    cuts = (fim_cut(text, rng) for _path, text in stdlib_calibration_sources(n_texts, seed, skip_first))
    return [cut for cut in cuts if cut is not None]


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


class HessianCollector(ActivationCollector):
    """Like `ActivationCollector`, but keeps only `sum_t x_t x_t^T` [K, K] per linear (float64):
    memory independent of how much text calibrates, which GPTQ wants plenty of."""

    def __init__(self, model: nn.Module, *, include: Callable[[str, nn.Module], bool] | None = None) -> None:
        super().__init__(model, include=include)
        self._hessians: dict[str, torch.Tensor] = {}

    def _hook(self, name: str):
        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to("cpu", torch.float32)
            update = (x.T @ x).to(torch.float64)
            if name in self._hessians:
                self._hessians[name] += update
            else:
                self._hessians[name] = update

        return record

    def hessians(self) -> dict[str, torch.Tensor]:
        return dict(self._hessians)


@torch.inference_mode()
def collect_linear_hessians(
    model: nn.Module, batches: Iterable[Any], *, forward: Callable[[nn.Module, Any], Any] | None = None
) -> dict[str, torch.Tensor]:
    """Run `model` on each batch and return every nn.Linear's input Hessian, name -> [K, K] float64
    — the `calibration` argument of `quantize_model_(..., mode="gptq")`."""
    call = forward or (lambda m, b: m(b))
    with HessianCollector(model) as collector:
        for batch in batches:
            call(model, batch)
    return collector.hessians()
