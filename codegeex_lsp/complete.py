"""One completion, cursor context to suggestion: the path the server, the CLI and benchmarks share.

`complete_request(context, options, generator)`:
1. `plan_request`: the context becomes a `FimRequest` (its scope and mode kept), bounded before it
   is tokenized and fitted to the model's context (`prompt.budget`);
2. `generator.generate(request, options, ...)`: raw candidates, finish reason and timings, from
   whichever generator (the in-process engine, the model worker, an OpenAI-compatible server);
   each applies the one stop spec (`postprocess.early_stop.stop_spec`) while it generates;
3. `finish_candidates`: heal and post-process once, with the real scope, mode and request id.

Torch-free: the generator owns the model.

The shapes one keystroke passes through (worker backend; the wire maps are these dataclasses as
msgpack maps), six:
1. lsp `InlineCompletionParams` (the handler reads uri, position, trigger kind);
2. `CompletionContext` (the document around the cursor, its mode and scope);
3. `FimRequest` + `CompletionOptions` (the worker's `complete`);
4. `Prompt` (ids, stop ids, forced word; the decode loop derives its sampling from it and the
   options, its stops from `early_stop.StopSpec`);
5. `Completion`: the decode loop fills the raw candidates, counts and timings, the generator its
   labels (the worker's `result`), `complete_planned` the post-processed texts (the filters take
   each text with the `FimRequest`);
6. lsp `InlineCompletionList` (from the text and the context's clamped cursor).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from typing import Any, Protocol

from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.context import CompletionContext, to_fim_request
from codegeex_lsp.postprocess import finish_candidates
from codegeex_lsp.prompt.budget import bound_request, fit_to_context
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.protocol import Completion


class Generator(Protocol):
    def generate(
        self,
        request: FimRequest,
        options: CompletionOptions,
        *,
        cancel: Cancellation | None = None,
        cache_key: Hashable | None = None,
    ) -> Completion:
        """Raw candidates in `raw` (`completion`/`candidates` empty); `cache_key` names the document
        whose per-document state (a KV cache) the request may reuse. A generator stops at once when
        `cancel` fires (it registers `cancel.on_cancel`, or reads the flag between tokens) and
        answers finish_reason "cancelled"."""
        ...


def plan_request(
    context: CompletionContext, options: CompletionOptions, n_context: int
) -> tuple[FimRequest, CompletionOptions]:
    """The request and budgets the generator gets for `context` on a model of `n_context` tokens."""
    return fit_to_context(bound_request(to_fim_request(context), options), options, n_context)


def complete_planned(
    request: FimRequest,
    options: CompletionOptions,
    generator: Generator,
    *,
    request_id: str | None = None,
    cancel: Cancellation | None = None,
    cache_key: Hashable | None = None,
) -> Completion:
    """Generate for an already planned `request`, then heal and post-process the candidates."""
    raw = generator.generate(request, options, cancel=cancel, cache_key=cache_key)
    if raw.finish_reason == "cancelled":
        return dataclasses.replace(raw, completion="", candidates=())
    texts = finish_candidates(raw.raw, request, request_id)
    return dataclasses.replace(raw, completion=texts[0] if texts else "", candidates=texts)


def complete_request(
    context: CompletionContext,
    options: CompletionOptions,
    generator: Generator,
    *,
    n_context: int,
    **generate_args: Any,
) -> Completion:
    """The suggestion for `context` (not NONE mode): plan, then `complete_planned`."""
    request, options = plan_request(context, options, n_context)
    return complete_planned(request, options, generator, **generate_args)
