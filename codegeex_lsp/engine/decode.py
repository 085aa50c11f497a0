"""The decode loop: prefill (only what a reused cache lacks), then tokens against a preallocated KV cache.

Our own loop rather than `generate()`: no per-token logits-processor machinery, n candidates
decoded as one batch after a single prefill, stop tokens and stop strings, a streaming callback and a
cancellation check between forward passes (so `$/cancelRequest` stops work within one step).

Two ways to do less work per keystroke:

- prefix reuse: `generate` accepts a cache whose first `n_cached` positions already hold the start
  of the prompt (the previous keystroke's prompt, see `kv_cache.PrefixCache`) and prefills only the
  rest, in chunks with a cancellation check between them;
- prompt-lookup speculation (greedy, one candidate): the last generated tokens are looked up in the
  prompt and in what was generated so far; the tokens that followed them there are a draft, and one
  forward pass over `[token, draft...]` checks the whole draft. The longest prefix of the draft that
  greedy would have produced is kept, plus the model's own next token after it; the cache is rolled
  back past the rejected tokens. The output is the greedy output, token for token.

What to decode is the built `Prompt` (its ids, stop token ids and forced text) and the request's
`CompletionOptions` (max tokens, temperature, top-p, n, seed); where a candidate ends, a
`postprocess.early_stop.StopSpec`. The result is the one generation type, `protocol.Completion`,
with the raw candidates and the decode's counts and timings (the service adds the model's labels).

`Prompt.forced_text` (the cursor's partial word, see `forced`): the first tokens are limited to
those that spell it; the text of every candidate starts after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.engine import fused_decode
from codegeex_lsp.engine.forced import TokenTexts, constrain, token_texts
from codegeex_lsp.engine.kv_cache import KVCache
from codegeex_lsp.engine.model import Transformer
from codegeex_lsp.engine.sampling import argmax, sample
from codegeex_lsp.postprocess.early_stop import StopSpec
from codegeex_lsp.prompt.types import Prompt
from codegeex_lsp.protocol import Completion

FinishReason = Literal["stop", "length", "cancelled"]

# Prefill in chunks of this many tokens, checking for cancellation in between: a superseded request
# stops within one chunk, and what it prefilled stays in the cache for the next keystroke. On 2 cores
# (bf16, 0.5B) 128-token chunks cost ~20% more than 256-token ones and halve the wait for a stale one.
PREFILL_CHUNK_TOKENS = 128


@dataclass(frozen=True)
class LookupParams:
    """Prompt-lookup drafting: the last `max_ngram`..`min_ngram` tokens matched earlier in the context.

    `max_draft_tokens` bounds one draft; the draft length adapts between 1 and that bound (doubling
    after a fully accepted draft, shrinking to what was accepted otherwise). Why a back-off: on CPU
    a pass over a few tokens costs more than a one-token pass (GEMM instead of GEMV, the lm head
    on every position), so after a draft of which nothing was kept, drafting pauses for 1, 2, 4 ..
    `max_backoff_steps` plain steps (doubling while drafts keep failing), which bounds what text
    the context does not predict can cost.
    """

    max_draft_tokens: int = 8
    max_ngram: int = 3
    min_ngram: int = 1
    max_backoff_steps: int = 8


OnToken = Callable[[int, int, str], None]  # (candidate index, token id, text so far)


def prefill(model: Transformer, cache: KVCache, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
    """tokens [1, S] at positions start.. -> logits [1, V] for the last position."""
    logits = fused_decode.forward_tokens(model, cache, tokens, start)
    return model(tokens, start, cache) if logits is None else logits


def decode_one_token(model: Transformer, cache: KVCache, tokens: torch.Tensor, pos: int) -> torch.Tensor:
    """tokens [B, 1] at position pos -> logits [B, V] (one fused C++ call where it applies)."""
    logits = fused_decode.decode_step(model, cache, tokens, pos)
    return model(tokens, pos, cache) if logits is None else logits


def verify_draft(model: Transformer, cache: KVCache, tokens: torch.Tensor, pos: int) -> torch.Tensor:
    """tokens [1, 1+K] (the last token and a draft) at positions pos.. -> logits [1+K, V], one per position."""
    logits = fused_decode.forward_tokens(model, cache, tokens, pos, last_only=False)
    return model(tokens, pos, cache, last_only=False)[0] if logits is None else logits


class PromptLookup:
    """The context (prompt + generated tokens) indexed by n-gram, for drafts of what comes next.

    `index[ngram]` is the end position of the latest occurrence of `ngram` that has a token after
    it; appending a token makes the previous end position eligible, so a lookup is O(max_ngram).
    """

    def __init__(self, context: Sequence[int], params: LookupParams) -> None:
        self.params = params
        self.tokens: list[int] = list(context)
        self._index: dict[tuple[int, ...], int] = {}
        for end in range(len(self.tokens) - 1):
            self._add(end)

    def _add(self, end: int) -> None:
        for n in range(self.params.min_ngram, self.params.max_ngram + 1):
            if end + 1 >= n:
                self._index[tuple(self.tokens[end + 1 - n : end + 1])] = end

    def append(self, token: int) -> None:
        if self.tokens:
            self._add(len(self.tokens) - 1)
        self.tokens.append(token)

    def draft(self, max_tokens: int) -> list[int]:
        """Up to `max_tokens` tokens that followed the longest matching n-gram of the context's end."""
        if max_tokens <= 0:
            return []
        for n in range(min(self.params.max_ngram, len(self.tokens)), self.params.min_ngram - 1, -1):
            end = self._index.get(tuple(self.tokens[-n:]))
            if end is not None:
                return self.tokens[end + 1 : end + 1 + max_tokens]
        return []


class _Streams:
    """The candidates being decoded: ids, text, stop checks, streaming callback, finish reasons.

    With forced text, `forcing[b]` is what candidate b has yet to spell of it; its text (what stop
    rules, the callback and the result see) is what follows the forced text.
    """

    def __init__(
        self,
        n: int,
        tokenizer: Any,
        prompt: Prompt,
        stop: StopSpec,
        on_token: OnToken | None,
        table: TokenTexts | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.on_token = on_token
        self.stop_ids = set(prompt.stop_token_ids)
        self.ids: list[list[int]] = [[] for _ in range(n)]
        self.texts = [""] * n
        self.finish: list[FinishReason | None] = [None] * n
        self.table = table
        self.forced = prompt.forced_text if table is not None else ""
        self.forcing = [self.forced] * n
        self.need_text = (
            bool(stop.strings) or stop.single_line or on_token is not None or stop.check is not None
        )
        self.steps = 0
        self.first_token_at: float | None = None

    @property
    def is_forcing(self) -> bool:
        return any(rest and f is None for rest, f in zip(self.forcing, self.finish, strict=True))

    def constrain(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [B, V] limited, per candidate still forcing, to tokens that agree with the rest of
        the forced text; a candidate no token agrees with ends with no text."""
        if self.table is None or not self.is_forcing:
            return logits
        rows = [rest if f is None else "" for rest, f in zip(self.forcing, self.finish, strict=True)]
        logits, possible = constrain(logits, rows, self.table)
        for b, ok in enumerate(possible):
            if not ok:
                self.finish[b] = "stop"
        return logits

    def _visible(self, text: str) -> str:
        return text[len(self.forced) :] if text.startswith(self.forced) else ""

    @property
    def done(self) -> bool:
        return all(f is not None for f in self.finish)

    def cancel(self) -> None:
        self.finish = [f or "cancelled" for f in self.finish]

    def push(self, tokens: Sequence[int]) -> None:
        """One sampled token per candidate (finished candidates ignore theirs)."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.steps += 1
        for b, token in enumerate(tokens):
            if self.finish[b] is not None:
                continue
            if token in self.stop_ids:
                self.finish[b] = "stop"
                continue
            self.ids[b].append(token)
            if self.forcing[b]:
                assert self.table is not None
                self.forcing[b] = self.table.advance(self.forcing[b], token)
                if self.forcing[b]:
                    continue  # still spelling the user's word: no text of its own yet
            if not self.need_text:
                continue
            text = self._visible(self.tokenizer.decode(self.ids[b], skip_special_tokens=False))
            cut = self.stop.cut(text)
            if cut is not None:
                text = text[:cut]
                self.finish[b] = "stop"
            elif (
                self.stop.check is not None
                and "\n" in self.tokenizer.decode([token])
                and self.stop.check(text)
            ):
                self.finish[b] = "stop"
            self.texts[b] = text
            if self.on_token is not None:
                self.on_token(b, token, text)

    def raw(self) -> tuple[str, ...]:
        """Each candidate's text (without the stop token / stop string that ended it)."""
        if self.need_text:
            return tuple(self.texts)
        return tuple(self._visible(self.tokenizer.decode(ids, skip_special_tokens=False)) for ids in self.ids)


@dataclass
class _Counts:
    forward_passes: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0


def decode_n_tokens(
    model: Transformer,
    cache: KVCache,
    logits: torch.Tensor,
    pos: int,
    max_new: int,
    streams: _Streams,
    options: CompletionOptions,
    is_cancelled: Callable[[], bool],
    counts: _Counts,
) -> None:
    """Sample from `logits` [B, V] (the prediction for position `pos`), then one token per step."""
    generator = None
    if options.temperature > 0:
        generator = torch.Generator().manual_seed(options.seed if options.seed is not None else 0)
    n = logits.shape[0]
    for step in range(max_new):
        if is_cancelled():
            streams.cancel()
            return
        logits = streams.constrain(logits)
        if streams.done:
            return
        next_tokens = sample(logits, options.temperature, options.top_p, generator)  # [B]
        streams.push(next_tokens.tolist())
        if streams.done or step == max_new - 1:
            return
        logits = decode_one_token(model, cache, next_tokens.view(n, 1), pos)
        counts.forward_passes += 1
        pos += 1


def decode_speculative(
    model: Transformer,
    cache: KVCache,
    logits: torch.Tensor,
    pos: int,
    max_new: int,
    streams: _Streams,
    lookup: PromptLookup,
    is_cancelled: Callable[[], bool],
    counts: _Counts,
) -> None:
    """Greedy, one candidate: like `decode_n_tokens`, but each pass checks a prompt-lookup draft.

    `token` is the greedy choice for position `pos`, not yet in the cache. A pass writes `token` and
    the draft at pos..pos+K and returns the greedy choice after each of them: draft token i is kept
    while it equals the choice after the one before it, so what is emitted is what greedy decoding
    emits, and the choice after the last kept token is the next `token` (free of charge).
    """
    max_draft = lookup.params.max_draft_tokens
    draft_len = max_draft
    backoff = pause = 0  # after a draft with nothing kept: plain steps before the next draft
    token = int(argmax(streams.constrain(logits)[0]))
    while True:
        if is_cancelled():
            streams.cancel()
            return
        if streams.done:  # no token agreed with the forced text
            return
        streams.push([token])
        lookup.append(token)
        if streams.done or streams.steps >= max_new:
            return
        room = min(draft_len, max_new - streams.steps, cache.max_len - pos - 1)
        draft = lookup.draft(room) if pause == 0 and not streams.is_forcing else []
        pause = max(0, pause - 1)
        if not draft:
            logits = decode_one_token(model, cache, torch.tensor([[token]]), pos)
            counts.forward_passes += 1
            token, pos = int(argmax(streams.constrain(logits)[0])), pos + 1
            continue
        chosen = argmax(verify_draft(model, cache, torch.tensor([[token, *draft]]), pos)).tolist()
        counts.forward_passes += 1
        counts.draft_tokens += len(draft)
        kept = 0
        while kept < len(draft) and draft[kept] == chosen[kept]:
            kept += 1
        counts.accepted_tokens += kept
        pos += 1 + kept
        cache.truncate(pos)  # the rejected draft tokens' keys/values are overwritten later
        for accepted in draft[:kept]:
            streams.push([accepted])
            lookup.append(accepted)
            if streams.done or streams.steps >= max_new:
                return
        token = chosen[kept]
        draft_len = min(2 * draft_len, max_draft) if kept == len(draft) else max(1, kept)
        if kept == 0:
            backoff = min(max(1, 2 * backoff), lookup.params.max_backoff_steps)
            pause = backoff
        else:
            backoff = 0


def generate(
    model: Transformer,
    tokenizer: Any,
    prompt: Prompt,
    options: CompletionOptions,
    *,
    stop: StopSpec | None = None,
    on_token: OnToken | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    cache: KVCache | None = None,
    n_cached: int = 0,
    lookup: LookupParams | None = None,
    table: TokenTexts | None = None,
) -> Completion:
    """Decode `options.n` candidates for `prompt`. Greedy output equals transformers' greedy.

    A candidate ends at one of `prompt.stop_token_ids`, at a stop string or newline of `stop`
    (None: the prompt's stop strings), or when `stop.check(text)`, which runs each time a candidate
    completes a line, says so (the caller's post-processing decides what to keep). It is how a
    block stops at the end of its scope instead of running on for max_tokens.

    `cache` (batch 1): decode into it instead of a new one; its first `n_cached` positions must hold
    `prompt.token_ids[:n_cached]` and are not recomputed (at least the last prompt token always is,
    for its logits). Afterwards its first `reused_tokens + prefill_tokens` positions hold the
    prompt's start (all of it unless cancelled during the prefill); later positions hold generated
    tokens. With n > 1 the candidates decode in an expanded copy.

    `lookup`: prompt-lookup speculation; used for greedy single-candidate decoding only.

    `prompt.forced_text`: the first tokens must spell it (`table`: the tokenizer's `TokenTexts`,
    built once per tokenizer when not given); candidates' texts start after it.

    The result's `raw` and `token_ids` are the candidates' (stop token or string excluded), its
    `finish_reason` the first candidate's, its timings `prefill_s`, `decode_s`, `decode_tok_s`
    (steps after the first token over decode time, per sequence) and, once a token was sampled,
    `first_token_s` (from the call's start); the labels (model, format, mode) are left empty.
    """
    prompt_ids = prompt.token_ids
    if not prompt_ids:
        raise ValueError("empty prompt")
    n_prompt = len(prompt_ids)
    room = model.max_seq_len - n_prompt
    if room <= 0:
        raise ValueError(f"prompt of {n_prompt} tokens does not fit the context ({model.max_seq_len})")
    max_new = min(options.max_tokens, room)
    n = max(1, options.n)
    if cache is None or cache.batch_size != 1 or cache.max_len < n_prompt + max_new:
        cache, n_cached = model.new_cache(1), 0
    n_cached = max(0, min(n_cached, n_prompt - 1))
    cancelled = is_cancelled or (lambda: False)
    if prompt.forced_text and table is None:
        table = token_texts(tokenizer)
    stop = stop or StopSpec(prompt.stop_strings, False)
    streams = _Streams(n, tokenizer, prompt, stop, on_token, table if prompt.forced_text else None)
    counts = _Counts()
    speculate = lookup is not None and options.temperature <= 0 and n == 1

    with torch.inference_mode():
        started = time.perf_counter()
        cache.truncate(n_cached)
        pos = n_cached
        logits = None
        while pos < n_prompt:
            if pos > n_cached and cancelled():
                break
            chunk = prompt_ids[pos : pos + PREFILL_CHUNK_TOKENS]
            logits = prefill(model, cache, torch.tensor([list(chunk)], dtype=torch.long), pos)
            pos += len(chunk)
        n_prefilled = pos - n_cached
        prefill_s = time.perf_counter() - started
        decode_started = time.perf_counter()
        if logits is None or pos < n_prompt:
            streams.cancel()
        elif speculate:
            assert lookup is not None
            context = PromptLookup(prompt_ids, lookup)
            decode_speculative(model, cache, logits, pos, max_new, streams, context, cancelled, counts)
        else:
            if n > 1:
                cache = cache.expand(n)
                logits = logits.expand(n, -1)
            decode_n_tokens(model, cache, logits, pos, max_new, streams, options, cancelled, counts)
    decode_s = time.perf_counter() - decode_started
    steps = streams.steps  # tokens sampled per candidate (the stop token included)
    timings = {
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "decode_tok_s": (steps - 1) / decode_s if decode_s > 0 and steps > 1 else 0.0,
    }
    if streams.first_token_at is not None:
        timings["first_token_s"] = streams.first_token_at - started
    return Completion(
        raw=streams.raw(),
        token_ids=tuple(tuple(ids) for ids in streams.ids),
        prompt_tokens=n_prompt,
        generated_tokens=max((len(ids) for ids in streams.ids), default=0),
        finish_reason=streams.finish[0] or "length",
        timings=timings,
        prefill_tokens=n_prefilled,
        reused_tokens=n_cached,
        draft_tokens=counts.draft_tokens,
        accepted_tokens=counts.accepted_tokens,
        forward_passes=counts.forward_passes,
    )
