"""Resolve `--model` to weights on disk and load them into our Transformer.

Accepted: the embedded default's name, a GGUF file (converted once into the cache), or a local
Hugging Face directory with safetensors. Pickled `.bin` weights are refused: loading them can run
arbitrary code. Every failure is a `ModelError` with a one-line fix: a GGUF's header and a
config.json are checked (`model_check`) before the file is hashed, converted or read, and whatever
a broken file still makes a library raise while loading is reported as a ModelError too.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codegeex_lsp.config import EngineOptions, cache_dir
from codegeex_lsp.engine.arch import ModelArgs, args_from_hf_config, map_hf_state_dict
from codegeex_lsp.engine.embedded import EMBEDDED_MODELS, EmbeddedModel, assemble, sha256_file
from codegeex_lsp.engine.gguf_convert import CONVERTER_VERSION, SUPPORTED_GGUF_ARCHS, convert_gguf
from codegeex_lsp.engine.model import Transformer
from codegeex_lsp.engine.model_check import check_gguf, check_hf_config
from codegeex_lsp.engine.packed_linear import pack_linears_
from codegeex_lsp.errors import ModelError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class LoadedModel:
    """A ready model: weights, tokenizer and the facts the prompt and bench stages need."""

    model: Transformer
    tokenizer: Any
    name: str
    model_type: str
    hf_dir: Path
    dtype: torch.dtype
    eos_token_ids: tuple[int, ...]
    load_s: float
    source_sha256: str | None = None
    embedded: EmbeddedModel | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    quant: str = "none"  # what the weights are: "none" or "int4 (<recipe>)" (quant_label)


def resolve_hf_dir(
    spec: str, cache: Path, progress: Progress
) -> tuple[Path, str | None, EmbeddedModel | None]:
    """Turn a model spec into a HF-layout directory (converting a GGUF on first use)."""
    embedded = EMBEDDED_MODELS.get(spec)
    if embedded is not None:
        gguf = cache / "models" / f"{embedded.name}.gguf"
        if not gguf.is_file() or gguf.stat().st_size != embedded.size_bytes:
            progress(f"assembling the embedded model {embedded.name} (verifying sha256)")
            assemble(embedded, gguf)
        return _converted(gguf, embedded.sha256, cache, progress), embedded.sha256, embedded
    path = Path(spec).expanduser()
    if not path.exists():
        known = ", ".join(sorted(k for k in EMBEDDED_MODELS if k != "default"))
        raise ModelError(
            f"model {spec!r} not found: pass an embedded model name ({known}), a .gguf file or a "
            "Hugging Face directory with safetensors"
        )
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"{path} is not a GGUF file; pass a .gguf file or a Hugging Face directory")
        check_gguf(path, SUPPORTED_GGUF_ARCHS)  # before the hash: a bad header fails in milliseconds
        progress(f"hashing {path.name}")
        stat = path.stat()
        digest = _gguf_sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)
        return _converted(path, digest, cache, progress), digest, None
    return path, None, None


@functools.lru_cache(maxsize=8)
def _gguf_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """A GGUF's sha256, once per file version per process: resolving a model twice (the int4 check,
    then the load) must not hash hundreds of MB twice."""
    return sha256_file(path)


def _converted(gguf: Path, digest: str, cache: Path, progress: Progress) -> Path:
    out = cache / "converted" / f"{gguf.stem}-{digest[:16]}"
    marker = out / "codegeex_source.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("sha256") == digest and info.get("converter") == CONVERTER_VERSION:
            return out
    progress(f"converting {gguf.name} once into {out} (later starts are fast)")
    return convert_gguf(gguf, out, source_sha256=digest, log=progress)


def _safetensor_files(hf_dir: Path) -> list[Path]:
    files = sorted(hf_dir.glob("*.safetensors"))
    if files:
        return files
    if any(hf_dir.glob("*.bin")) or any(hf_dir.glob("*.pt")) or any(hf_dir.glob("*.pth")):
        raise ModelError(
            f"{hf_dir} holds only pickled PyTorch weights, which can run code when loaded; "
            "convert them to safetensors first"
        )
    raise ModelError(f"{hf_dir} has no *.safetensors weights; pass a Hugging Face model directory")


def read_state_dict(hf_dir: Path) -> dict[str, torch.Tensor]:
    """Memory-map every safetensors shard (no copy until a tensor is cast or used)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in _safetensor_files(hf_dir):
        try:
            tensors.update(load_file(str(file)))
        except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as exc:
            raise ModelError(
                f"{file} is corrupt or truncated ({str(exc)[:200]}); re-download or re-convert it"
            ) from exc
    return tensors


def read_config(hf_dir: Path) -> dict[str, Any]:
    config_path = hf_dir / "config.json"
    if not config_path.is_file():
        raise ModelError(f"{hf_dir} has no config.json; pass a Hugging Face model directory")
    try:
        config = json.loads(config_path.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, deep nesting
        raise ModelError(
            f"{config_path} is not valid JSON ({str(exc)[:200]}); re-download the model"
        ) from exc
    except OSError as exc:
        raise ModelError(f"cannot read {config_path} ({exc.strerror or exc})") from exc
    return check_hf_config(config, str(config_path))


def build_model(
    args: ModelArgs, state: dict[str, torch.Tensor], dtype: torch.dtype, max_seq_len: int
) -> Transformer:
    """Construct on the meta device, then adopt the cast tensors (no random init, one copy in RAM)."""
    try:
        mapped = map_hf_state_dict(args, state, torch.cat)
    except RuntimeError as exc:  # torch.cat of tensors whose shapes do not fit together
        raise ModelError(f"weights do not match the config ({str(exc).splitlines()[0]})") from exc
    with torch.device("meta"):
        model = Transformer(args, max_seq_len=max_seq_len)
    # Copy out of the memory map even when no cast is needed: page-cache pages behind an mmap stream
    # slower than anonymous memory, and the checkpoint file may change under a live model.
    mapped = {k: v.to(dtype, copy=True) for k, v in mapped.items()}
    tied = args.tie_embeddings and "output.weight" not in mapped
    if tied:
        mapped["output.weight"] = mapped["tok_embeddings.weight"]
    try:
        model.load_state_dict(mapped, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"weights do not match the config ({str(exc).splitlines()[0]})") from exc
    if tied:
        model.tie_weights()
    return model.eval()


INT4_MODE = "gptq"  # bench quant: +5.5 % perplexity with plain asym rounding, less with GPTQ
INT4_GROUP_SIZE = 32
INT4_ACT_ORDER = True  # GPTQ columns by decreasing Hessian diagonal: +4.8 % -> +3.9 % on its own
# The MLP input projections (w_gate_up) of the first and last quarter of the blocks cost the most
# perplexity in 4 bits (bench quant slice, per block range: -1.0 and -1.4 points when given ~8 bits,
# against -0.6 and -0.5 for the middle halves), so those get 8 bits, as llama.cpp's Q4_K_M keeps
# more bits at the ends of the stack. The untied embedding gets 8 bits too: a lookup reads one row
# per token, so its second plane costs memory (~70 MB) but no speed. The 8 bits are round-to-nearest
# codes split into two int4 planes (quant.reference.quantize_8bit_split, recipe tag "s8"): before,
# the second plane quantized the GPTQ plane's error in its own scale, which took two int8 dot
# products per weight where one 8-bit code takes one on AVX-512 VNNI (+29 % prefill arithmetic).
INT4_RESIDUAL_EDGE = 0.25
# The lm head is screened (quant/screened_head.py): an int4 screen over half the hidden state's
# principal directions, then the best 256 candidates rescored exactly from the head's 8-bit rows. On
# held-out code (scripts/experiments/head_screen.py) the screen kept fp's top token among its best
# 256 at 100 % of positions, where the int4 head agreed with it at 95.9 %; it reads ~53 % of the int4
# head's bytes.
INT4_SCREEN_FRACTION = 0.5
INT4_SCREEN_CANDIDATES = 256
# Calibration runs on the shipped multilingual corpus (quant/corpus: six files per HumanEval-X
# language, license-checked), alternating languages: plain snippets, then fill-in-the-middle prompts
# in the model's own format (a masked line or a few, see quant.calibration.fim_cut). Why FIM: fitted
# on plain text only, int4 cost +28 % perplexity of held-out FIM middles for +1.3 % on plain text
# (bench quant, recipe -c48); with FIM prompts +3.4 % and +0.9 %. The rows after <|fim_middle|> are
# not like plain-text rows. 0 FIM prompts: a model without FIM.
# Fewer tokens than the stdlib recipe (-c48-f48: 48 x 512 plain + 48 FIM, ~45k tokens, ~17 min on
# 2 cores): the Hessians cost ~2 GFLOP per token on this model (more than its forward pass, w_down's
# 4864-wide X^T X dominates), so the token count sets the build time. Measured (bench quant --texts 8
# --max-tokens 512 --modes engine, held-out stdlib Python): this recipe +2.56 % plain / -1.80 % FIM
# perplexity vs fp32, against +0.87 % / +3.40 % for -c48-f48; 524 CPU-s to build (was ~35 CPU-min).
# Arithmetic v2 (same bench): +2.53 % / -2.12 %; 186-197 CPU-s to build, 3 min 17-24 s wall on 2
# cores at load 4, where v1 took 847 CPU-s and 14 min 33 s (its OpenMP-split small ops stalling).
CALIBRATION_TEXTS = 6  # plain snippets, 1 per language
CALIBRATION_TOKENS = 384  # per sequence at most
CALIBRATION_FIM = 12  # FIM prompts, 2 per language
# The arithmetic's revision, for changes that move codes without changing the recipe's knobs.
# v2: float32 Hessian sums of the upper block triangle, blocked error feedback (INNER columns),
# triangular solves for L^-1, one thread per linear: 0.03-0.13 % of codes differ from v1.
INT4_ARITHMETIC = "v2"


@dataclass(frozen=True)
class Int4Recipe:
    """One int4 calibration: `texts` plain corpus snippets and `fim` FIM prompts, each at most
    `tokens` tokens. Its `name` names the cached checkpoint and the result files: a new recipe never
    reuses an old one's output."""

    texts: int
    fim: int
    tokens: int = CALIBRATION_TOKENS

    @property
    def name(self) -> str:
        return (
            f"{INT4_MODE}{'-act' if INT4_ACT_ORDER else ''}-g{INT4_GROUP_SIZE}"
            f"-r{round(100 * INT4_RESIDUAL_EDGE)}s8-ml{self.texts}-f{self.fim}-t{self.tokens}-{INT4_ARITHMETIC}"
            f"-sh{round(100 * INT4_SCREEN_FRACTION)}c{INT4_SCREEN_CANDIDATES}"
        )


# Two rungs, built in this order; the highest one built is what loads. The first fits the 2-minute
# build, so int4 serves soon after the first start. The second calibrates on 6x the sequences (every
# corpus file as a snippet, two FIM prompts each): on held-out code in four languages (never
# benchmark data; scripts/experiments/int4_output_bits.py) its top-1 agreement with fp32 is 93.7 %
# against 92.6 %, mean KL 0.0273 against 0.0365, perplexity +2.7 % against +3.4 %, for the same bytes
# per token; it costs ~3.5x the first's CPU time (660 s user CPU, 9:14 wall on a busy 2-core host).
# The server builds it in the background once the first serves and switches again; `model install`
# and the benchmarks build both.
INT4_LADDER: tuple[Int4Recipe, ...] = (
    Int4Recipe(CALIBRATION_TEXTS, CALIBRATION_FIM),
    Int4Recipe(36, 72),
)
INT4_RECIPE = INT4_LADDER[-1].name  # what a fully built cache serves (result labels, bench quant)


def weights_key(hf_dir: Path) -> str:
    """A cache key for a directory's weights (names, sizes, mtimes): hashing GBs at each start is not
    worth it for a key; the int4 checkpoint itself carries a content sha256 that is verified on load."""
    digest = hashlib.sha256()
    for file in [hf_dir / "config.json", *_safetensor_files(hf_dir)]:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def calibration_texts(n_texts: int = CALIBRATION_TEXTS, max_tokens: int = CALIBRATION_TOKENS) -> list[str]:
    """Standard-library snippets (AWQ's calibration in bench quant; never benchmark data)."""
    from codegeex_lsp.quant.calibration import stdlib_calibration_texts

    return stdlib_calibration_texts(n_texts=n_texts, max_chars=4 * max_tokens)


def fim_sequences(
    tokenizer: Any, model_type: str | None, cuts: list[tuple[str, Any]], max_tokens: int
) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) of each (language, FimCut) as a prompt built by the prompt stage
    exactly as for an editor request, followed by its true middle and the format's end token (the
    ids after the prompt length). Empty when the model has no FIM format."""
    from codegeex_lsp.errors import PromptFormatError
    from codegeex_lsp.prompt import Budget, FimRequest, build_prompt, detect_format
    from codegeex_lsp.prompt.tokens import encode_plain

    if not cuts:
        return []
    try:
        fmt = detect_format(tokenizer, model_type)
    except PromptFormatError:
        return []
    if not fmt.takes_suffix:
        return []
    budget = Budget(prefix_tokens=max_tokens * 9 // 16, suffix_tokens=max_tokens // 4, carry_line=False)
    sequences = []
    for language, cut in cuts:
        prompt = build_prompt(fmt, tokenizer, FimRequest(cut.prefix, cut.suffix, language), budget)
        middle = encode_plain(tokenizer, cut.middle)[: max_tokens // 8]
        sequences.append(([*prompt.token_ids, *middle, *prompt.stop_token_ids[:1]], len(prompt.token_ids)))
    return sequences


def fim_calibration_ids(
    tokenizer: Any,
    model_type: str | None,
    n_texts: int = CALIBRATION_FIM,
    max_tokens: int = CALIBRATION_TOKENS,
    skip_first: int = 0,
) -> list[tuple[list[int], int]]:
    """`fim_sequences` over standard-library files after the first `skip_first` (bench quant's
    held-out FIM prompts)."""
    from codegeex_lsp.quant.calibration import stdlib_fim_cuts

    if n_texts <= 0:
        return []
    cuts = [("python", cut) for cut in stdlib_fim_cuts(n_texts, skip_first=skip_first)]
    return fim_sequences(tokenizer, model_type, cuts, max_tokens)


def corpus_fim_ids(
    tokenizer: Any, model_type: str | None, n_cuts: int = CALIBRATION_FIM, max_tokens: int = CALIBRATION_TOKENS
) -> list[tuple[list[int], int]]:
    """`fim_sequences` over the shipped calibration corpus, all six languages in turn."""
    from codegeex_lsp.quant.calibration import corpus_fim_cuts

    return fim_sequences(tokenizer, model_type, corpus_fim_cuts(n_cuts) if n_cuts > 0 else [], max_tokens)


def calibration_forward(
    tokenizer: Any, max_tokens: int = CALIBRATION_TOKENS, progress: Callable[[int], None] | None = None
) -> Callable[[Transformer, str | list[int]], None]:
    """model, text or token ids -> one full-sequence forward pass (every position reaches every
    linear); the collectors' hooks record what they need. `progress` gets the count done."""
    done = 0

    def forward(model: Transformer, text: str | list[int]) -> None:
        nonlocal done
        if isinstance(text, list):  # a FIM prompt's ids: keep the end (the middle and its context)
            ids = text[-max_tokens:]
        else:
            ids = tokenizer.encode(text, add_special_tokens=False)[:max_tokens]
        if ids:
            model(torch.tensor([ids]), 0, model.new_cache(max_len=len(ids)), last_only=False)
        done += 1
        if progress is not None:
            progress(done)

    return forward


def calibration_sequences(
    tokenizer: Any,
    n_texts: int = CALIBRATION_TEXTS,
    max_tokens: int = CALIBRATION_TOKENS,
    model_type: str | None = None,
    n_fim: int = CALIBRATION_FIM,
) -> list[str | list[int]]:
    """What int4 calibrates on: corpus snippets (text), then corpus FIM prompts (token ids)."""
    from codegeex_lsp.quant.calibration import corpus_calibration_texts

    texts: list[str | list[int]] = [text for _lang, text in corpus_calibration_texts(n_texts, 4 * max_tokens)]
    texts += [ids for ids, _ in corpus_fim_ids(tokenizer, model_type, n_fim, max_tokens)]
    return texts


def calibration_hessians(
    model: Transformer,
    tokenizer: Any,
    n_texts: int = CALIBRATION_TEXTS,
    max_tokens: int = CALIBRATION_TOKENS,
    progress: Progress | None = None,
    model_type: str | None = None,
    n_fim: int = CALIBRATION_FIM,
    on_sequence: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Input Hessians of every linear of `model` on the calibration corpus (never benchmark data).
    The lm head's Hessian is recorded without computing logits. `on_sequence` gets the count done."""
    from codegeex_lsp.quant.calibration import collect_linear_hessians

    texts = calibration_sequences(tokenizer, n_texts, max_tokens, model_type, n_fim)

    def report(done: int) -> None:
        if on_sequence is not None:
            on_sequence(done)
        if progress is not None:
            progress(f"calibrating on the corpus: {done}/{len(texts)} sequences")

    return collect_linear_hessians(
        model,
        texts,
        forward=calibration_forward(tokenizer, max_tokens, report),
        record_only=frozenset({"output"}),
    )


def quant_label(quant: str, recipe: Int4Recipe | None = None) -> str:
    """`quant` with the int4 recipe spelled out (default: the top rung, what a fully built cache
    serves), for result files: generations cached under one recipe must not be resumed under another."""
    return f"int4 ({(recipe or INT4_LADDER[-1]).name})" if quant == "int4" else quant


def int4_residual(n_layers: int, edge: float = INT4_RESIDUAL_EDGE) -> Callable[[str], bool]:
    """Which modules get 8 bits (two planes): the embedding, and w_gate_up in the first and last `edge`
    of the `n_layers` blocks."""
    ends = max(1, round(n_layers * edge)) if edge > 0 else 0

    def wanted(name: str) -> bool:
        if name == "tok_embeddings":
            return True
        parts = name.split(".")
        if len(parts) == 4 and parts[0] == "layers" and parts[3] == "w_gate_up" and parts[1].isdigit():
            return int(parts[1]) < ends or int(parts[1]) >= n_layers - ends
        return False

    return wanted


def int4_checkpoint_path(hf_dir: Path, key: str, cache: Path, recipe: Int4Recipe | None = None) -> Path:
    """Where the int4 checkpoint of these weights under `recipe` (default: the first rung) lives in
    the cache."""
    stem = hf_dir.name if key[:16] in hf_dir.name else f"{hf_dir.name}-{key[:16]}"
    return cache / "int4" / f"{stem}-{(recipe or INT4_LADDER[0]).name}.safetensors"


def sequence_tokens(tokenizer: Any, texts: list[str | list[int]], max_tokens: int = CALIBRATION_TOKENS) -> list[int]:
    """How many tokens `calibration_forward` runs for each calibration sequence."""
    return [
        len(text[-max_tokens:]) if isinstance(text, list) else len(tokenizer.encode(text, add_special_tokens=False)[:max_tokens])
        for text in texts
    ]


def gptq_work(n_out: int, n_in: int) -> float:
    """GPTQ's cost for a [n_out, n_in] weight in the units of `BuildBar` (flops at calibration's
    rate). Fitted to one-thread timings on the embedded model (w_down 2.1 s, w_gate_up 0.65 s, lm
    head 9.5 s): Cholesky and L^-1 ~K^3, clip search and error feedback per weight ~4200 + 2.2 K."""
    return 0.9 * n_in**3 + n_out * n_in * (4200.0 + 2.2 * n_in)


class BuildBar:
    """One tqdm bar with ETA over the whole int4 build, on stderr (stdout may be JSON-RPC), shown
    even when stderr is a log file. Its units are work: per calibration sequence, its tokens times
    each linear's forward flops (2 N K; none for `record_only`) and Hessian sum (~K^2); per GPTQ'd
    linear, `gptq_work`. A linear is counted done when the next one starts (or at `finish`), so
    the bar never runs ahead of the build (calibration is ~half the time, 18 of 211 steps once)."""

    def __init__(
        self,
        model: nn.Module,
        tokens: list[int],
        progress: Progress,
        record_only: frozenset[str] = frozenset({"output"}),
    ) -> None:
        from tqdm import tqdm

        linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
        per_token = sum(
            m.in_features**2 + (0 if name in record_only else 2 * m.in_features * m.out_features)
            for name, m in linears.items()
        )
        self.sequence_work = [1e-9 * n * per_token for n in tokens]
        self.weights = {name: 1e-9 * gptq_work(m.out_features, m.in_features) for name, m in linears.items()}
        self.progress = progress
        self.bar = tqdm(
            total=sum(self.sequence_work) + sum(self.weights.values()),
            desc="int4 build",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]",
            file=sys.stderr,
            disable=False,
            mininterval=1.0,
            dynamic_ncols=True,
        )
        self._seen = 0
        self._running: str | None = None  # the GPTQ'd linear in progress

    def sequence_done(self, done: int) -> None:
        self._advance(sum(self.sequence_work[self._seen : done]))
        self._seen = done
        self.bar.set_postfix_str(f"calibrating {done} sequences", refresh=False)
        self.progress(f"int4 build: calibration {done} sequences ({self.fraction():.0%})")

    def message(self, text: str) -> None:
        """quantize_model_'s progress: 'gptq: <name> [NxK]' as each linear starts."""
        if text.startswith("gptq: "):
            self._credit_running()
            self._running = text.split()[1]
            self.bar.set_postfix_str(self._running, refresh=False)
            self.progress(f"int4 build: {text} ({self.fraction():.0%})")
        else:
            self.progress(text)

    def swap_linear(self, old: str, new: str, n_out: int, n_in: int) -> None:
        """Linear `old` is quantized as `new` [n_out x n_in] instead (the lm head's screen)."""
        work = 1e-9 * gptq_work(n_out, n_in)
        self.bar.total += work - self.weights.pop(old, 0.0)
        self.weights[new] = work

    def _advance(self, work: float) -> None:
        # never past the total: the credits are summed in another order than the total was, so the
        # last one can overshoot it by a rounding (tqdm then warns about clamping its bar)
        self.bar.update(max(0.0, min(work, self.bar.total - self.bar.n)))

    def _credit_running(self) -> None:
        if self._running is not None:
            self._advance(self.weights.get(self._running, 0.0))
            self._running = None

    def finish(self) -> None:
        """Every linear quantized: the bar to 100 %."""
        self._credit_running()
        self._advance(self.bar.total - self.bar.n)

    def fraction(self) -> float:
        return self.bar.n / self.bar.total if self.bar.total else 1.0

    def close(self) -> None:
        self.bar.close()


@dataclass(frozen=True)
class Int4Source:
    """What every rung of one model's int4 ladder is built from and checked against."""

    args: ModelArgs
    hf_dir: Path
    key: str  # sha256 of the source weights, recorded in (and checked against) each checkpoint
    max_seq: int
    progress: Progress
    tokenizer: Any


def build_int4(source: Int4Source, path: Path, recipe: Int4Recipe) -> Transformer:
    """Quantize the float model once and save it atomically at `path` (GPTQ after one calibration
    pass over the corpus), with a progress bar on stderr."""
    from codegeex_lsp.quant import quantize_model_, save_quantized
    from codegeex_lsp.quant.screened_head import screen_head_

    args, hf_dir, key, max_seq, progress, tokenizer = (
        source.args, source.hf_dir, source.key, source.max_seq, source.progress, source.tokenizer,
    )  # fmt: skip

    started = time.perf_counter()
    progress(f"quantizing {hf_dir.name} to int4 ({recipe.name}) once into {path}")
    model = build_model(args, read_state_dict(hf_dir), torch.float32, max_seq)
    texts = calibration_sequences(tokenizer, recipe.texts, recipe.tokens, args.model_type, recipe.fim)
    bar = BuildBar(model, sequence_tokens(tokenizer, texts, recipe.tokens), progress)
    try:
        hessians = calibration_hessians(
            model,
            tokenizer,
            n_texts=recipe.texts,
            max_tokens=recipe.tokens,
            model_type=args.model_type,
            n_fim=recipe.fim,
            on_sequence=bar.sequence_done,
        )
        screened = screen_head_(model, hessians, fraction=INT4_SCREEN_FRACTION, candidates=INT4_SCREEN_CANDIDATES)
        if screened is not None:
            bar.swap_linear("output", "output.screen", screened.out_features, screened.screen_dim)
        quantize_model_(
            model,
            mode=INT4_MODE,
            group_size=INT4_GROUP_SIZE,
            calibration=hessians,
            act_order=INT4_ACT_ORDER,
            residual=int4_residual(args.n_layers),
            progress=bar.message,
        )
        bar.finish()
        del hessians
        path.parent.mkdir(parents=True, exist_ok=True)
        save_quantized(
            model,
            path,
            {
                "source_model_sha256": key,
                "model_type": args.model_type,
                "calibration": (
                    f"corpus {recipe.texts} snippets + {recipe.fim} FIM prompts, <= {recipe.tokens} tokens each"
                ),
                "recipe": recipe.name,
            },
        )
    finally:
        bar.close()
    progress(f"int4 build done in {time.perf_counter() - started:.0f} s: {path}")
    return model


def int4_checkpoint(options: EngineOptions, progress: Progress | None = None, recipe: Int4Recipe | None = None) -> Path:
    """Where `options.model`'s int4 checkpoint under `recipe` (default: the first rung) lives, built
    or not. Resolves the model first (assembling or converting it once, like a load)."""
    cache = cache_dir(options.cache_dir)
    hf_dir, digest, _ = resolve_hf_dir(options.model, cache, progress or (lambda _m: None))
    return int4_checkpoint_path(hf_dir, digest or weights_key(hf_dir), cache, recipe)


def int4_missing(options: EngineOptions, progress: Progress | None = None) -> list[Int4Recipe]:
    """The rungs of INT4_LADDER above the highest one built, in build order (empty: the top serves)."""
    cache = cache_dir(options.cache_dir)
    hf_dir, digest, _ = resolve_hf_dir(options.model, cache, progress or (lambda _m: None))
    key = digest or weights_key(hf_dir)
    paths = [int4_checkpoint_path(hf_dir, key, cache, recipe) for recipe in INT4_LADDER]
    return list(INT4_LADDER[_highest_built(paths) + 1 :])


def _highest_built(paths: list[Path]) -> int:
    """Index of the highest rung whose checkpoint exists, -1 when none does."""
    return max((i for i, path in enumerate(paths) if path.is_file()), default=-1)


@contextlib.contextmanager
def build_lock(path: Path, progress: Progress) -> Iterator[None]:
    """One int4 build per checkpoint at a time across processes (two editors' workers, a CLI run):
    the later one waits for the earlier one's file instead of building it again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process building {path.name}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_int4(source: Int4Source, cache: Path, build: str = "all") -> tuple[Transformer, Int4Recipe]:
    """The int4 model of the highest rung of INT4_LADDER built, and that rung. `build`: "all" first
    builds every rung not built yet (quantized once, saved in the cache); "first" builds the first
    rung only when none is built (a one-shot command should not wait for the refinement). A
    checkpoint that fails its checks (truncated, damaged, another layout) is rebuilt."""
    if build not in ("all", "first"):
        raise ModelError(f"int4 build {build!r} is not supported; use all or first")
    paths = [int4_checkpoint_path(source.hf_dir, source.key, cache, recipe) for recipe in INT4_LADDER]
    highest = _highest_built(paths)
    todo = range(highest + 1, len(paths)) if build == "all" else range(highest + 1, 1)
    model: Transformer | None = None
    for i in todo:
        with build_lock(paths[i], source.progress):
            if not paths[i].is_file():  # nobody built it while we waited
                model = None  # the previous rung's model: freed before the next build
                model = build_int4(source, paths[i], INT4_LADDER[i])
    top = _highest_built(paths)
    if model is not None and top == todo[-1]:
        return model, INT4_LADDER[top]  # just built and saved: no need to read it back
    return _load_int4_file(source, paths[top], INT4_LADDER[top]), INT4_LADDER[top]


def build_int4_rung(options: EngineOptions, recipe: Int4Recipe, progress: Progress) -> Path:
    """Build `recipe`'s checkpoint of `options.model` unless it is built (the background build's
    child process); its path."""
    if options.threads > 0:
        torch.set_num_threads(options.threads)
    cache = cache_dir(options.cache_dir)
    hf_dir, digest, _ = resolve_hf_dir(options.model, cache, progress)
    key = digest or weights_key(hf_dir)
    path = int4_checkpoint_path(hf_dir, key, cache, recipe)
    with build_lock(path, progress):
        if not path.is_file():
            _safetensor_files(hf_dir)  # refuse pickles before reading anything else
            args = args_from_hf_config(read_config(hf_dir))
            tokenizer = load_tokenizer(hf_dir, options.trust_remote_code)
            max_seq = min(options.max_context_tokens, args.max_position_embeddings)
            build_int4(Int4Source(args, hf_dir, key, max_seq, progress, tokenizer), path, recipe)
    return path


def _load_int4_file(source: Int4Source, path: Path, recipe: Int4Recipe) -> Transformer:
    """One rung's checkpoint, rebuilt when it fails its checks."""
    from codegeex_lsp.quant import load_quantized_into

    progress = source.progress
    progress(f"loading int4 weights from {path}")
    with torch.device("meta"):
        model = Transformer(source.args, max_seq_len=source.max_seq)
    try:
        load_quantized_into(model, path, source_model_sha256=source.key)
        return model.eval()
    except ModelError as exc:
        message = f"int4 checkpoint unusable, rebuilding it: {exc}"
        log.warning("%s", message)
        progress(message)
    with build_lock(path, progress):
        path.unlink(missing_ok=True)
        return build_int4(source, path, recipe)


def pick_dtype(name: str) -> torch.dtype:
    """`auto` is bf16: oneDNN's bf16 GEMV is ~2x fp32 on AVX2 CPUs (measured: 330 vs 650 µs)."""
    table = {
        "auto": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float32": torch.float32,
        "fp32": torch.float32,
    }
    if name not in table:
        raise ModelError(f"dtype {name!r} is not supported; use auto, bfloat16 or float32")
    return table[name]


def load_tokenizer(hf_dir: Path, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(hf_dir), trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelError(
                f"the tokenizer in {hf_dir} needs custom code; rerun with --trust-remote-code if you trust it"
            ) from exc
        raise ModelError(f"cannot load the tokenizer in {hf_dir} ({exc})") from exc
    except OSError as exc:
        raise ModelError(f"cannot load the tokenizer in {hf_dir} ({exc})") from exc
    except Exception as exc:  # a corrupt tokenizer.json: tokenizers raises a bare Exception
        raise ModelError(
            f"cannot load the tokenizer in {hf_dir} ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def eos_ids(tokenizer: Any, config: dict[str, Any]) -> tuple[int, ...]:
    """Every id that ends a sequence: config eos (int or list) and the tokenizer's eos."""
    ids: list[int] = []
    eos = config.get("eos_token_id")
    ids.extend(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return tuple(dict.fromkeys(int(i) for i in ids))


def load_model(options: EngineOptions, progress: Progress | None = None) -> LoadedModel:
    """Load `options.model` ready for decoding. Raises ModelError with a one-line fix."""
    try:
        return _load_model(options, progress)
    except MemoryError as exc:
        raise ModelError(f"model {options.model!r} does not fit in memory; the file may be broken") from exc


def _load_model(options: EngineOptions, progress: Progress | None) -> LoadedModel:
    progress = progress or (lambda message: log.info("%s", message))
    started = time.perf_counter()
    if options.threads > 0:
        torch.set_num_threads(options.threads)
    cache = cache_dir(options.cache_dir)
    hf_dir, digest, embedded = resolve_hf_dir(options.model, cache, progress)
    _safetensor_files(hf_dir)  # refuse pickles before reading anything else
    config = read_config(hf_dir)
    args = args_from_hf_config(config)
    tokenizer = load_tokenizer(hf_dir, options.trust_remote_code)
    max_seq = min(options.max_context_tokens, args.max_position_embeddings)
    recipe: Int4Recipe | None = None
    if options.quant == "int4":
        dtype = torch.float32  # int4 weights; activations, norms and the KV cache stay fp32
        source = Int4Source(args, hf_dir, digest or weights_key(hf_dir), max_seq, progress, tokenizer)
        model, recipe = load_int4(source, cache, options.int4_build)
        from codegeex_lsp.engine import fused_decode

        # Now, not at the first completion: building the fused step's plan moves the weights into
        # their huge-page arena (~0.5-1 s for the 0.5B model on 2 cores).
        fused_decode.plan_for(model)
    elif options.quant == "none":
        dtype = pick_dtype(options.dtype)
        progress(f"loading weights from {hf_dir}")
        model = build_model(args, read_state_dict(hf_dir), dtype, max_seq)
        if dtype == torch.bfloat16:
            pack_linears_(model)
    else:
        raise ModelError(f"quantization {options.quant!r} is not supported; use none or int4")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=embedded.name if embedded else str(options.model),
        model_type=args.model_type,
        hf_dir=hf_dir,
        dtype=dtype,
        eos_token_ids=eos_ids(tokenizer, config),
        load_s=time.perf_counter() - started,
        source_sha256=digest,
        embedded=embedded,
        quant=quant_label(options.quant, recipe),
    )
