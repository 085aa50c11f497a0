"""The completion service: FimRequest -> Prompt -> raw generation (`generate`), the local generator.

One instance holds one loaded model and its prompt format. `generate()` returns raw candidates;
the orchestrator (`codegeex_lsp.complete`) heals and post-processes them, for the CLI, the language
server and the benchmarks alike, so what a benchmark measures is what an editor gets. `complete()`
is `generate()` plus that same post-processing, for callers holding a FimRequest.

Per document (`cache_key`, the server passes the document URI) the service keeps the KV cache of the
last prompt (`kv_cache.PrefixCache`, an LRU within a byte budget), so a keystroke prefills only what
changed since the previous prompt of that document; greedy requests decode with prompt-lookup
speculation. Both are on by default; `CODEGEEX_LSP_KV_REUSE=0`, `CODEGEEX_LSP_SPECULATIVE=0` and
`CODEGEEX_LSP_KV_CACHE_MB=<MiB>` (the budget) override the defaults of a service built without
explicit arguments, which is how `bench latency` compares each feature on and off.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable
from dataclasses import replace
from typing import Any

from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import LookupParams, generate
from codegeex_lsp.engine.forced import TokenTexts, token_texts
from codegeex_lsp.engine.kv_cache import KVCache, PrefixCache, cache_len_for
from codegeex_lsp.engine.load import LoadedModel, Progress, load_model
from codegeex_lsp.postprocess import finish_candidates
from codegeex_lsp.postprocess.early_stop import stop_spec
from codegeex_lsp.prompt import FimRequest, Prompt, build_prompt, detect_format, verify_special_tokens
from codegeex_lsp.prompt.budget import budget_for
from codegeex_lsp.prompt.healing import split_trailing_whitespace
from codegeex_lsp.protocol import Completion

KV_REUSE_ENV = "CODEGEEX_LSP_KV_REUSE"
SPECULATIVE_ENV = "CODEGEEX_LSP_SPECULATIVE"
KV_CACHE_MB_ENV = "CODEGEEX_LSP_KV_CACHE_MB"
DEFAULT_KV_CACHE_BYTES = 256 << 20  # ~14 documents of 1.5k positions with the 0.5B default model


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


def _env_bytes(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(float(value) * (1 << 20)) if value else default
    except ValueError:
        return default


class CompletionService:
    """Owns a loaded model + prompt format; `complete()` is safe to call from one thread at a time.

    `kv_reuse`, `speculative`, `kv_cache_bytes`: None takes the environment's value, else the default
    (on, on, DEFAULT_KV_CACHE_BYTES).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        format_override: str | None = None,
        *,
        kv_reuse: bool | None = None,
        speculative: bool | None = None,
        kv_cache_bytes: int | None = None,
    ) -> None:
        self.loaded = loaded
        self.format = detect_format(loaded.tokenizer, loaded.model_type, format_override)
        verify_special_tokens(self.format, loaded.tokenizer)
        reuse = _env_flag(KV_REUSE_ENV, True) if kv_reuse is None else kv_reuse
        budget = (
            _env_bytes(KV_CACHE_MB_ENV, DEFAULT_KV_CACHE_BYTES) if kv_cache_bytes is None else kv_cache_bytes
        )
        self.prefix_cache: PrefixCache | None = PrefixCache(budget) if reuse else None
        speculate = _env_flag(SPECULATIVE_ENV, True) if speculative is None else speculative
        self.lookup: LookupParams | None = LookupParams() if speculate else None
        # Built now rather than at the first keystroke inside a word (~0.5 s for 150k tokens).
        self.token_texts: TokenTexts | None = (
            token_texts(loaded.tokenizer) if self.format.carries_line else None
        )

    @classmethod
    def load(
        cls, options: EngineOptions, format_override: str | None = None, progress: Progress | None = None
    ) -> CompletionService:
        return cls(load_model(options, progress), format_override)

    def build(self, request: FimRequest, options: CompletionOptions) -> Prompt:
        """The prompt for `request`, its prefix ending before the cursor's trailing whitespace, its
        stop tokens the format's and the model's end-of-sequence tokens.

        The generated text starts at that point whether or not the cursor line is carried after the
        middle token (`Budget.carry_line`): the carried text is prompt and the forced word is spelled
        by decoding but left out of the candidates' text, so `complete()` heals and post-processes
        the generated text the same way either way.
        """
        prefix, _trailing = split_trailing_whitespace(request.prefix)
        prompt = build_prompt(
            self.format, self.loaded.tokenizer, replace(request, prefix=prefix), budget_for(options)
        )
        stop_ids = tuple(dict.fromkeys((*prompt.stop_token_ids, *self.loaded.eos_token_ids)))
        return replace(prompt, stop_token_ids=stop_ids)

    def complete(self, request: FimRequest, options: CompletionOptions, **generate_args: Any) -> Completion:
        """`generate()`, then the candidates healed and post-processed (`finish_candidates`)."""
        result = self.generate(request, options, **generate_args)
        texts = finish_candidates(result.raw, request)
        return replace(result, completion=texts[0] if texts else "", candidates=texts)

    def generate(
        self,
        request: FimRequest,
        options: CompletionOptions,
        *,
        cancel: Cancellation | None = None,
        on_token: Callable[[int, int, str], None] | None = None,
        cache_key: Hashable | None = None,
    ) -> Completion:
        """The raw candidates for `request` (`completion` and `candidates` left empty: the caller
        post-processes). `cache_key` names its document (the URI): requests with the same key
        reuse the KV cache of the previous prompt's common start; None reuses nothing. The decode
        reads `cancel`'s flag between tokens (a flag read, no callback needed)."""
        started = time.perf_counter()
        prompt = self.build(request, options)
        cache, n_cached = self._take_cache(cache_key, prompt.token_ids, options)
        built = time.perf_counter()
        result = generate(
            self.loaded.model,
            self.loaded.tokenizer,
            prompt,
            options,
            stop=stop_spec(request, prompt.stop_strings),
            on_token=on_token,
            is_cancelled=None if cancel is None else cancel.is_cancelled,
            cache=cache,
            n_cached=n_cached,
            lookup=self.lookup,
            table=self.token_texts,
        )
        if cache is not None and self.prefix_cache is not None and cache_key is not None:
            valid = result.reused_tokens + result.prefill_tokens
            self.prefix_cache.put(cache_key, prompt.token_ids[:valid], cache)
        decoded = result.timings
        first_token = (
            {"first_token_s": built - started + decoded["first_token_s"]}
            if "first_token_s" in decoded
            else {}
        )
        return replace(
            result,
            model=self.loaded.name,
            format=self.format.name,
            mode=request.mode,
            timings={
                "load_s": self.loaded.load_s,
                "prompt_s": built - started,
                "prefill_s": decoded["prefill_s"],
                "decode_s": decoded["decode_s"],
                "decode_tok_s": decoded["decode_tok_s"],
                **first_token,
                "total_s": time.perf_counter() - started,
            },
        )

    def _take_cache(
        self, cache_key: Hashable | None, prompt_ids: tuple[int, ...], options: CompletionOptions
    ) -> tuple[KVCache | None, int]:
        """The document's cache (grown if this request needs more room) and how many prompt tokens
        it already holds; a fresh cache on a miss. None when reuse is off or no key was given."""
        if self.prefix_cache is None or cache_key is None:
            return None, 0
        model = self.loaded.model
        draft = self.lookup.max_draft_tokens if self.lookup is not None else 0
        needed = min(len(prompt_ids) + options.max_tokens + draft + 1, model.max_seq_len)
        cache, n_cached = self.prefix_cache.take(cache_key, prompt_ids)
        if cache is None:
            return model.new_cache(1, cache_len_for(needed, model.max_seq_len)), 0
        if cache.max_len < needed:
            cache.truncate(n_cached)
            cache = cache.resized(cache_len_for(needed, model.max_seq_len))
        return cache, n_cached

    def drop_cache(self, cache_key: Hashable | None = None) -> None:
        """Forget one document's KV cache (closed), or all of them (None)."""
        if self.prefix_cache is None:
            return
        if cache_key is None:
            self.prefix_cache.clear()
        else:
            self.prefix_cache.discard(cache_key)
