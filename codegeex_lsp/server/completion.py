"""One completion request, from cursor to suggestion text; the handlers of both LSP methods call this.

Order, cheapest first, so that most keystrokes never reach the model:

1. snapshot on the documents thread: context (mode NONE/LINE/BLOCK, cross-file references);
   unknown document, disabled language or NONE mode -> no suggestion;
2. typed-through: the user typed the start of the suggestion shown last -> its rest;
3. plan (`complete.plan_request`: bounds and budgets) -> LRU lookup keyed on the session's cache
   key (prompt token ids + sampling params, or the planned request);
4. debounce (adaptive, see scheduler.Debouncer), then skip if a newer request superseded this one;
5. `complete.complete_planned` on the model thread: the backend's session generates (worker,
   in-process or remote; the ticket's cancellation stops it at once), then the candidates are
   healed and post-processed once, with the context's scope and the request id.

A superseded request returns None (the client sees an empty result); a request the client
cancels raises CancelledError out of the handler (pygls answers RequestCancelled, -32800). A
request the backend fails (worker crash, remote server down) is answered empty and counted in
`backend_errors`; the user is told once when the backend starts failing and once when it is back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from codegeex_lsp.complete import complete_planned, plan_request
from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.context import CompletionContext, ContextOptions, Position
from codegeex_lsp.context.scope import mode_when_invoked
from codegeex_lsp.errors import BackendError
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.protocol import Completion
from codegeex_lsp.server.backends import Session
from codegeex_lsp.server.cache import CompletionCache, TypedThrough
from codegeex_lsp.server.documents import DocumentStore
from codegeex_lsp.server.loader import ModelHost
from codegeex_lsp.server.options import ServerOptions
from codegeex_lsp.server.scheduler import Scheduler, Ticket
from codegeex_lsp.server.status import Counters

log = logging.getLogger(__name__)

Source = Literal["model", "cache", "typed-through"]

# Per-request token counts the engine reports (Completion fields), summed in the counters.
DECODE_COUNTS = ("prefill_tokens", "reused_tokens", "draft_tokens", "accepted_tokens")


def completion_options(options: ServerOptions, mode: str) -> CompletionOptions:
    return CompletionOptions(
        format=options.model.format,
        max_tokens=options.completion.max_tokens_for(mode),
        temperature=options.completion.temperature,
        top_p=options.completion.top_p,
        n=1,
        prefix_tokens=options.context.prefix_tokens,
        suffix_tokens=options.context.suffix_tokens,
        reference_tokens=options.context.reference_tokens if options.context.references else 0,
        carry_line=options.context.carry_line,
    )


def context_options(options: ServerOptions, root: str | None) -> ContextOptions:
    budgets = options.context
    return ContextOptions(
        near_lines=budgets.near_lines,
        reference_tokens=budgets.reference_tokens,
        references=budgets.references and budgets.reference_tokens > 0,
        root=root,
    )


class Completer:
    """Owns the per-request flow; everything it touches is shared with the app (one per server)."""

    def __init__(
        self,
        documents: DocumentStore,
        scheduler: Scheduler,
        host: ModelHost,
        counters: Counters,
        cache: CompletionCache,
        typed: TypedThrough,
        get_options: Callable[[], ServerOptions],
        root: Callable[[], str | None] = lambda: None,
        on_shown: Callable[[str, str], None] = lambda _uri, _language: None,
        on_backend: Callable[[str | None], None] = lambda _error: None,
        decodes: deque[dict[str, Any]] | None = None,
    ) -> None:
        self.documents = documents
        self.scheduler = scheduler
        self.host = host
        self.counters = counters
        self.cache = cache
        self.typed = typed
        self._options = get_options
        self._root = root
        self._on_shown = on_shown  # (uri, languageId) of every new suggestion shown (telemetry)
        self._on_backend = on_backend  # an error message when the backend starts failing, None when back
        self._backend_failing = False
        self._decodes = decodes  # one record per finished decode, for `codegeex/status`

    async def suggest(
        self, uri: str, position: Position, request_id: str, *, invoked: bool = False
    ) -> tuple[str, CompletionContext] | None:
        """The suggestion's text at `position` in `uri` and the context it completes (its clamped
        cursor and prefix are what the LSP conversion needs), or None; counts the outcome. Never
        raises but CancelledError. `invoked`: explicitly asked for (no debounce, a NONE mode
        becomes `mode_when_invoked`)."""
        self.counters.requests += 1
        log.debug("request at %d:%d%s", position.line, position.character, " (invoked)" if invoked else "")
        ticket, superseded = self.scheduler.begin(uri, request_id)
        if superseded is not None:
            log.debug("supersedes request %s", superseded.request_id)
        arrived = time.monotonic()
        delay_s = (
            0.0 if invoked else self.scheduler.debouncer.observe(uri, position.line)
        )
        try:
            found = await self._suggest(position, invoked, ticket, arrived + delay_s, arrived)
        except asyncio.CancelledError:
            ticket.cancel()
            self.counters.cancelled += 1
            log.info("cancelled by the client")
            raise
        except BackendError as exc:
            self.counters.backend_errors += 1
            self.counters.empty += 1
            log.warning("the backend failed this request (%s); answering empty", exc)
            if not self._backend_failing:
                self._backend_failing = True
                self._on_backend(str(exc))
            return None
        except Exception:
            self.counters.errors += 1
            self.counters.empty += 1
            log.exception("completion failed; answering empty")
            return None
        finally:
            self.scheduler.end(ticket)
        if ticket.superseded:
            self.counters.cancelled += 1
            self.counters.superseded += 1
            log.info("superseded by a newer request; answering empty")
            return None
        if found is None or not found[0]:
            self.counters.empty += 1
            return None
        text, ctx, source = found
        self.counters.served += 1
        self.typed.remember(uri, ctx.prefix, ctx.suffix, text, ctx.mode)
        if source != "typed-through":  # the rest of one already shown is not a new one
            self._on_shown(uri, ctx.language.language_id)
        return text, ctx

    async def _suggest(
        self, position: Position, invoked: bool, ticket: Ticket, start_at: float, arrived: float
    ) -> tuple[str, CompletionContext, Source] | None:
        uri = ticket.uri
        options = self._options()
        ctx = await self.scheduler.documents.run(
            lambda: self.documents.snapshot(
                uri, position, context_options(options, self._root())
            )
        )
        if ctx is None:
            log.warning("%s is not open: no completion", uri)
            return None
        if not options.languages.allows(ctx.language.language_id):
            log.debug("language %s is disabled", ctx.language.language_id)
            return None
        if ctx.mode == "NONE":
            if not invoked:
                log.debug("no completion here (%s)", ctx.reason)
                return None
            ctx = dataclasses.replace(ctx, mode=mode_when_invoked(ctx.prefix, ctx.suffix))

        forwarded = self.typed.forward(uri, ctx.prefix, ctx.suffix)
        if forwarded is not None:
            self.counters.typed_through += 1
            log.debug("typed-through: %d chars left of the shown suggestion", len(forwarded))
            return forwarded, ctx, "typed-through"

        session = self.host.session
        if session is None or ticket.is_cancelled():
            if session is None:
                log.info("model %s: no completion", self.host.status.state)
            return None
        generation = self.host.generation
        fim, opts = plan_request(ctx, completion_options(options, ctx.mode), session.info.n_context)

        def prompt_key() -> tuple:
            return (generation, session.cache_key(fim, opts))

        key = await self.scheduler.documents.run(prompt_key)
        cached = self.cache.get(key)
        if cached is not None:
            self.counters.cache_hits += 1
            log.debug("cache hit (%d chars)", len(cached))
            return cached, ctx, "cache"

        wait_s = start_at - time.monotonic()
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        if ticket.is_cancelled():
            return None
        text = await self._decode(session, fim, opts, ticket, arrived)
        if self._backend_failing:
            self._backend_failing = False
            self._on_backend(None)
        if text is None:
            return None
        self.cache.put(key, text)
        return text, ctx, "model"

    async def _decode(
        self, session: Session, fim: FimRequest, opts: CompletionOptions, ticket: Ticket, arrived: float
    ) -> str | None:
        loop = asyncio.get_running_loop()

        def count_decode() -> None:
            self.counters.decodes += 1

        def job() -> str | None:
            if ticket.is_cancelled():  # superseded while queued: skip the prefill too
                return None
            loop.call_soon_threadsafe(count_decode)
            started = time.monotonic()
            result = complete_planned(
                fim,
                opts,
                session,
                request_id=ticket.request_id,
                cancel=ticket,
                cache_key=ticket.uri,
            )
            ended = time.monotonic()
            loop.call_soon_threadsafe(self._record_decode, ticket, started - arrived, ended - arrived, result)
            t = result.timings
            log.info(
                "%s %s: %d prompt tokens, %d generated (%s); prefill %.0f ms, decode %.0f ms",
                result.model,
                result.mode,
                result.prompt_tokens,
                result.generated_tokens,
                result.finish_reason,
                t.get("prefill_s", 0.0) * 1e3,
                t.get("decode_s", 0.0) * 1e3,
            )
            return None if result.finish_reason == "cancelled" else result.completion

        return await self.scheduler.model.run(job)

    def _record_decode(self, ticket: Ticket, queued_s: float, done_s: float, result: Completion) -> None:
        """Count a finished decode's tokens; keep its latencies from the request's arrival."""
        t = result.timings
        counts = {name: getattr(result, name) for name in DECODE_COUNTS}
        for name, value in counts.items():
            setattr(self.counters, name, getattr(self.counters, name) + value)
        if self._decodes is None:
            return
        first_token_s = t.get("first_token_s")
        self._decodes.append(
            {
                "requestId": ticket.request_id,
                "mode": result.mode,
                "finish": result.finish_reason,
                "promptTokens": result.prompt_tokens,
                "generatedTokens": result.generated_tokens,
                "prefillTokens": counts["prefill_tokens"],
                "reusedTokens": counts["reused_tokens"],
                "draftTokens": counts["draft_tokens"],
                "acceptedTokens": counts["accepted_tokens"],
                "forwardPasses": result.forward_passes,
                # From the request's arrival: debounce, queueing and prompt building included.
                "startMs": round(queued_s * 1e3, 2),
                "firstTokenMs": None if first_token_s is None else round((queued_s + first_token_s) * 1e3, 2),
                "totalMs": round(done_s * 1e3, 2),
                "prefillMs": round(t.get("prefill_s", 0.0) * 1e3, 2),
                "decodeMs": round(t.get("decode_s", 0.0) * 1e3, 2),
            }
        )
