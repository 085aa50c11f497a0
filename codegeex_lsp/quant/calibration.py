"""Calibration data for AWQ and GPTQ: real code available offline, and hook-based collectors.

The int4 recipe calibrates on `corpus/`, package data: six files in each HumanEval-X language
(Python, C++, Java, JavaScript, Go, Rust) from permissively licensed sources, with their origin,
license and notice in `corpus/MANIFEST.json` (rebuilt by scripts/build_calibration_corpus.py), so
every machine calibrates on the same bytes. Held-out sets (bench quant) and AWQ use the Python
standard library's own sources (`sysconfig.get_paths()["stdlib"]`), picked deterministically and
disjoint from the corpus's Python files. Never benchmark problems. Besides plain snippets, `fim_cut` masks whole lines
of such a file, so calibration can also run the prompts a completion backend actually sends.
The collectors record, for every `nn.Linear` of any `nn.Module` while the caller runs the model,
either its input rows (AWQ) or the running Hessian `sum x x^T` of its inputs (GPTQ), so they work
for the engine's model and toy modules alike.
"""

from __future__ import annotations

import itertools
import json
import queue
import random
import sysconfig
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

CORPUS_DIR = Path(__file__).with_name("corpus")
CORPUS_LANGUAGES = ("python", "cpp", "java", "javascript", "go", "rust")  # also LSP languageIds
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


@dataclass(frozen=True)
class CorpusFile:
    """One file of the shipped calibration corpus."""

    language: str
    name: str
    text: str
    license: str


def corpus_files(corpus: Path = CORPUS_DIR) -> list[CorpusFile]:
    """The corpus in a fixed order that alternates languages (python, cpp, ..., rust, python, ...),
    so any prefix of it covers all six languages evenly."""
    try:
        manifest = json.loads((corpus / "MANIFEST.json").read_text(encoding="utf-8"))
        by_lang: dict[str, list[CorpusFile]] = {lang: [] for lang in CORPUS_LANGUAGES}
        for entry in manifest["files"]:
            text = (corpus / entry["file"]).read_text(encoding="utf-8")
            by_lang[entry["language"]].append(CorpusFile(entry["language"], entry["file"], text, entry["license"]))
    except (OSError, KeyError, ValueError) as exc:
        raise RuntimeError(f"the calibration corpus in {corpus} is missing or damaged ({exc}); reinstall") from exc
    rounds = max(len(files) for files in by_lang.values())
    return [files[i] for i in range(rounds) for files in by_lang.values() if i < len(files)]


def corpus_calibration_texts(n_texts: int, max_chars: int, seed: int = 0) -> list[tuple[str, str]]:
    """(language, snippet) for the first `n_texts` corpus files, each at most `max_chars` from a
    deterministic offset."""
    rng = random.Random(seed)
    out = []
    for f in corpus_files()[:n_texts]:
        start = rng.randrange(0, max(1, len(f.text) - max_chars))
        out.append((f.language, f.text[start : start + max_chars]))
    return out


def corpus_fim_cuts(n_cuts: int, seed: int = 0) -> list[tuple[str, FimCut]]:
    """(language, cut): `n_cuts` FIM cuts over the corpus, cycling through its files (a file is cut
    again at another line once every file has had one)."""
    rng = random.Random(seed + 1)
    files = corpus_files()
    out: list[tuple[str, FimCut]] = []
    for i in range(n_cuts * 2):
        if len(out) == n_cuts:
            break
        f = files[i % len(files)]
        cut = fim_cut(f.text, rng)
        if cut is not None:
            out.append((f.language, cut))
    return out


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


HESSIAN_BLOCK = 608  # about this many columns per block row of X^T X (4864 = 8 x 608)


def block_bounds(k: int, block: int = HESSIAN_BLOCK) -> list[int]:
    """Edges of the ~`block`-wide column blocks of a [K, K] Hessian: [0, ..., K]."""
    n_blocks = max(1, round(k / block))
    return [k * i // n_blocks for i in range(n_blocks + 1)]


def add_upper_gram_(h: torch.Tensor, x: torch.Tensor, bounds: list[int]) -> None:
    """h [K, K] += x^T x (x [T, K]) on and above the diagonal blocks only (`bounds`); the blocks
    below are left alone (`mirror_upper` fills them). X^T X is symmetric, so with 8 block rows
    this is 9/16 of the product's flops: 1.9x faster for w_down's 4864 inputs, whose Hessian is
    most of calibration's work."""
    for lo, hi in itertools.pairwise(bounds):
        h[lo:hi, lo:].addmm_(x[:, lo:hi].T, x[:, lo:])


def mirror_upper_(h: torch.Tensor, bounds: list[int]) -> torch.Tensor:
    """Make h symmetric in place from its upper triangle (after `add_upper_gram_` with `bounds`)."""
    for lo, hi in itertools.pairwise(bounds):
        diag = h[lo:hi, lo:hi]
        diag.copy_(torch.triu(diag) + torch.triu(diag, diagonal=1).T)
        h[hi:, lo:hi] = h[lo:hi, hi:].T
    return h


class HessianCollector(ActivationCollector):
    """Like `ActivationCollector`, but keeps only `sum_t x_t x_t^T` [K, K] per linear, summed and
    handed out in float32 (the upper block triangle, mirrored at the end): memory independent of
    how much text calibrates.

    With `threads` > 1 (default: torch's thread count) the sums run on a thread of their own, fed
    through a bounded queue in call order, while the forward pass keeps the other threads: the two
    cost about the same, and neither splits its small ops across cores behind OpenMP barriers,
    which on a busy host stall on a descheduled thread (calibration took 1.6x longer on 2 threads
    than on 1 at load 4). Each linear's sum is added in the same order either way.

    Modules in `record_only` get their input recorded and then an empty batch of rows to compute:
    for a model's last linear (the lm head, 150k outputs) whose result calibration never reads,
    that skips a third of the forward pass's work."""

    QUEUE_ITEMS = 16  # inputs waiting for the summing thread (w_down's: 7.5 MB each at 384 tokens)

    def __init__(
        self,
        model: nn.Module,
        *,
        include: Callable[[str, nn.Module], bool] | None = None,
        record_only: frozenset[str] = frozenset(),
        threads: int | None = None,
    ) -> None:
        super().__init__(model, include=include)
        self.record_only = record_only
        self.threads = torch.get_num_threads() if threads is None else threads
        self._hessians: dict[str, torch.Tensor] = {}
        self._queue: queue.Queue[tuple[torch.Tensor, torch.Tensor] | None] | None = None
        self._summer: threading.Thread | None = None
        self._error: BaseException | None = None
        self._threads_before = 0

    def _hook(self, name: str):
        def record(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to("cpu", torch.float32)
            k = x.shape[1]
            h = self._hessians.get(name)
            if h is None:
                h = self._hessians[name] = torch.zeros(k, k)
            if self._queue is None:
                add_upper_gram_(h, x, block_bounds(k))  # in place: no [K, K] temporaries per call
            else:  # a copy: the model may still change its activation in place
                self._queue.put((h, x.clone(memory_format=torch.contiguous_format)))
            if name in self.record_only:
                return (args[0][..., :0, :], *args[1:])
            return None

        return record

    def _sum(self) -> None:
        assert self._queue is not None
        torch.set_num_threads(1)
        with torch.inference_mode():
            while (item := self._queue.get()) is not None:
                try:
                    if self._error is None:
                        h, x = item
                        add_upper_gram_(h, x, block_bounds(x.shape[1]))
                except BaseException as exc:  # kept for the caller; the queue keeps draining
                    self._error = exc
                finally:
                    self._queue.task_done()
            self._queue.task_done()

    def __enter__(self) -> HessianCollector:
        super().__enter__()
        if self.threads > 1:
            self._threads_before = torch.get_num_threads()
            self._queue = queue.Queue(maxsize=self.QUEUE_ITEMS)
            self._summer = threading.Thread(target=self._sum, name="hessian-sums", daemon=True)
            self._summer.start()
            torch.set_num_threads(self.threads - 1)
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self._summer is not None and self._queue is not None:
            self._queue.put(None)
            self._summer.join()
            self._summer = None
            torch.set_num_threads(self._threads_before)  # the summer's set_num_threads(1) moved it
        if self._error is not None and exc[0] is None:
            raise RuntimeError(f"summing calibration Hessians failed: {self._error}") from self._error

    def hessians(self) -> dict[str, torch.Tensor]:
        if self._queue is not None:
            self._queue.join()  # inside the `with`: wait for the sums queued so far
        if self._error is not None:
            raise RuntimeError(f"summing calibration Hessians failed: {self._error}") from self._error
        with torch.inference_mode():  # in place on sums that may have been made in inference mode
            return {name: mirror_upper_(h, block_bounds(h.shape[0])) for name, h in self._hessians.items()}


@torch.inference_mode()
def collect_linear_hessians(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    record_only: frozenset[str] = frozenset(),
) -> dict[str, torch.Tensor]:
    """Run `model` on each batch and return every nn.Linear's input Hessian, name -> [K, K] float32
    — the `calibration` argument of `quantize_model_(..., mode="gptq")`. `record_only`: linears
    whose output nobody reads (see HessianCollector)."""
    call = forward or (lambda m, b: m(b))
    with HessianCollector(model, record_only=record_only) as collector:
        for batch in batches:
            call(model, batch)
    return collector.hessians()
