"""The decode loop: prefill once, then one token per step against a preallocated KV cache.

Our own loop rather than `generate()`: no per-token logits-processor machinery, n candidates
decoded as one batch after a single prefill, stop tokens and stop strings, a streaming callback and a
cancellation check between tokens (so `$/cancelRequest` stops work within one token).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from codegeex_lsp.engine.kv_cache import KVCache
from codegeex_lsp.engine.model import Transformer
from codegeex_lsp.engine.sampling import sample

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop_token_ids: tuple[int, ...] = ()
    stop_strings: tuple[str, ...] = ()
    single_line: bool = False  # stop at the first newline that follows non-blank text
    seed: int | None = None


@dataclass(frozen=True)
class Generation:
    """One candidate: ids and text exclude the stop token / stop string that ended it."""

    token_ids: tuple[int, ...]
    text: str
    finish_reason: FinishReason


@dataclass(frozen=True)
class GenerationResult:
    candidates: tuple[Generation, ...]
    n_prompt_tokens: int
    n_decode_steps: int
    prefill_s: float
    decode_s: float

    @property
    def decode_tok_s(self) -> float:
        """Decode throughput per sequence: steps after the first token over decode time."""
        return (
            (self.n_decode_steps - 1) / self.decode_s
            if self.decode_s > 0 and self.n_decode_steps > 1
            else 0.0
        )


OnToken = Callable[[int, int, str], None]  # (candidate index, token id, text so far)


def prefill(model: Transformer, cache: KVCache, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
    """tokens [1, S] -> logits [1, V] for the last position."""
    return model(tokens, start, cache)


def decode_one_token(model: Transformer, cache: KVCache, tokens: torch.Tensor, pos: int) -> torch.Tensor:
    """tokens [B, 1] at position pos -> logits [B, V]."""
    return model(tokens, pos, cache)


def _cut_at_stop(text: str, stops: Sequence[str], single_line: bool) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    if single_line:
        body = len(text) - len(text.lstrip())
        newline = text.find("\n", body)
        if newline >= 0:
            hits.append(newline)
    return min(hits) if hits else None


def generate(
    model: Transformer,
    tokenizer: Any,
    prompt_ids: Sequence[int],
    params: SamplingParams,
    *,
    on_token: OnToken | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    stop_check: Callable[[str], bool] | None = None,
) -> GenerationResult:
    """Decode `params.n` candidates for `prompt_ids`. Greedy output equals transformers' greedy.

    `stop_check(text)` runs each time a candidate completes a line; True ends that candidate (the
    caller's post-processing decides what to keep). It is how a block stops at the end of its
    scope instead of running on for max_new_tokens.
    """
    if not prompt_ids:
        raise ValueError("empty prompt")
    n_prompt = len(prompt_ids)
    room = model.max_seq_len - n_prompt
    if room <= 0:
        raise ValueError(f"prompt of {n_prompt} tokens does not fit the context ({model.max_seq_len})")
    max_new = min(params.max_new_tokens, room)
    stop_ids = set(params.stop_token_ids)
    generator = None
    if params.temperature > 0:
        generator = torch.Generator().manual_seed(params.seed if params.seed is not None else 0)
    n = max(1, params.n)
    ids: list[list[int]] = [[] for _ in range(n)]
    texts = [""] * n
    finish: list[FinishReason | None] = [None] * n
    need_text = bool(params.stop_strings) or params.single_line or on_token is not None or stop_check is not None
    steps = 0
    decode_started = prefill_s = 0.0

    with torch.inference_mode():
        started = time.perf_counter()
        cache = model.new_cache(1)
        logits = prefill(model, cache, torch.tensor([list(prompt_ids)], dtype=torch.long))
        if n > 1:
            cache = cache.expand(n)
            logits = logits.expand(n, -1)
        prefill_s = time.perf_counter() - started
        decode_started = time.perf_counter()
        pos = n_prompt
        for step in range(max_new):
            if is_cancelled is not None and is_cancelled():
                finish = [f or "cancelled" for f in finish]
                break
            next_tokens = sample(logits, params.temperature, params.top_p, generator)  # [B]
            steps = step + 1
            for b, token in enumerate(next_tokens.tolist()):
                if finish[b] is not None:
                    continue
                if token in stop_ids:
                    finish[b] = "stop"
                    continue
                ids[b].append(token)
                if need_text:
                    texts[b] = tokenizer.decode(ids[b], skip_special_tokens=False)
                    cut = _cut_at_stop(texts[b], params.stop_strings, params.single_line)
                    if cut is not None:
                        texts[b] = texts[b][:cut]
                        finish[b] = "stop"
                    elif stop_check is not None and "\n" in tokenizer.decode([token]) and stop_check(texts[b]):
                        finish[b] = "stop"
                    if on_token is not None:
                        on_token(b, token, texts[b])
            if all(f is not None for f in finish) or step == max_new - 1:
                break
            logits = decode_one_token(model, cache, next_tokens.view(n, 1), pos)
            pos += 1
    decode_s = time.perf_counter() - decode_started
    candidates = []
    for b in range(n):
        text = texts[b] if need_text else tokenizer.decode(ids[b], skip_special_tokens=False)
        candidates.append(Generation(tuple(ids[b]), text, finish[b] or "length"))
    return GenerationResult(tuple(candidates), n_prompt, steps, prefill_s, decode_s)
