"""Freshness: cancel flags, supersession per document, adaptive debounce and the worker threads.

Threads, each a single worker so work on it runs in arrival order:

- `documents`: didOpen/didChange/didClose and the per-request snapshot (context + prompt). Edits
  and snapshots of one document never interleave, and the event loop never parses.
- `model`: one decode at a time (`CompletionService.complete` is single-threaded by design).
- `loader`: model loads (seconds to minutes), so a reload never queues behind decodes.

A `Ticket` is one completion request's `Cancellation`: the event loop cancels it when the client
sends `$/cancelRequest` (the handler's task is cancelled) or when a newer request for the same
document arrives (`superseded`), and the generator's `on_cancel` callback stops the work at once
(the worker's `cancel` frame, a closed HTTP stream, the engine's flag read between tokens).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.server.options import DebounceOptions

T = TypeVar("T")

_PAUSE_S = 1.0  # a longer gap between two requests is a pause, not typing rhythm
_EMA_WEIGHT = 0.3
_RHYTHM_FACTOR = 1.5  # wait this many typical keystroke gaps before calling the model


class Ticket(Cancellation):
    """One completion request in flight: its cancellation, document and id."""

    def __init__(self, uri: str, request_id: str) -> None:
        super().__init__()
        self.uri = uri
        self.request_id = request_id
        self.superseded = False


class Debouncer:
    """How long to wait before starting the model for a document.

    Adapts to the typing rhythm: the delay is 1.5x an exponential average of the gaps between
    requests for the same document (gaps over 1 s are pauses and are not averaged), clamped to
    [min_ms, max_ms]; before any rhythm is known it is initial_ms. Slow typists thus wait longer,
    so a decode is rarely started just before the next keystroke supersedes it; explicit
    invocations (`Invoked` trigger) never wait.

    A request on the same line as the document's previous one waits only min_ms: with line carry
    its prompt is the previous prompt plus the typed characters, so starting at once costs a few
    tokens of prefill that the next keystroke reuses anyway, and a superseded decode stops within
    a token. The rhythm delay is kept for line changes, whose suffix must be prefilled again.
    """

    def __init__(self, options: DebounceOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self._clock = clock
        self._last: dict[str, float] = {}
        self._gap_s: dict[str, float] = {}
        self._line: dict[str, int] = {}
        self.line_carry = True  # prompts carry the cursor line (set from the options by the server)

    def observe(self, uri: str, line: int | None = None) -> float:
        """Record a request for `uri` (at `line`, if known) now; return its delay in seconds."""
        now = self._clock()
        last = self._last.get(uri)
        self._last[uri] = now
        if last is not None and now - last < _PAUSE_S:
            gap = now - last
            prev = self._gap_s.get(uri)
            self._gap_s[uri] = gap if prev is None else (1 - _EMA_WEIGHT) * prev + _EMA_WEIGHT * gap
        same_line = line is not None and self._line.get(uri) == line and last is not None
        if line is not None:
            self._line[uri] = line
        if self.line_carry and same_line and now - last < _PAUSE_S:
            return self.options.min_ms / 1000.0
        return self.delay_s(uri)

    def delay_s(self, uri: str) -> float:
        opts = self.options
        gap = self._gap_s.get(uri)
        wanted_ms = opts.initial_ms if gap is None else _RHYTHM_FACTOR * gap * 1000.0
        return min(max(wanted_ms, opts.min_ms), opts.max_ms) / 1000.0

    def forget(self, uri: str) -> None:
        self._last.pop(uri, None)
        self._gap_s.pop(uri, None)
        self._line.pop(uri, None)


class SerialExecutor:
    """A single-thread executor whose jobs carry the caller's context (request id for logs)."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"codegeex-{name}")

    async def run(self, fn: Callable[[], T]) -> T:
        ctx = contextvars.copy_context()
        future = self._executor.submit(ctx.run, fn)
        return await asyncio.wrap_future(future)

    def submit(self, fn: Callable[[], T]):
        ctx = contextvars.copy_context()
        return self._executor.submit(ctx.run, fn)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Scheduler:
    """Tickets per document: a new request supersedes (cancels) the previous one for the same uri."""

    def __init__(self, debounce: DebounceOptions) -> None:
        self.debouncer = Debouncer(debounce)
        self.documents = SerialExecutor("documents")
        self.model = SerialExecutor("model")
        self.loader = SerialExecutor("loader")
        self._latest: dict[str, Ticket] = {}

    def begin(self, uri: str, request_id: str) -> tuple[Ticket, Ticket | None]:
        """A ticket for a new request; returns (ticket, the superseded ticket or None)."""
        ticket = Ticket(uri, request_id)
        previous = self._latest.get(uri)
        self._latest[uri] = ticket
        if previous is not None and not previous.is_cancelled():
            previous.superseded = True
            previous.cancel()
            return ticket, previous
        return ticket, None

    def end(self, ticket: Ticket) -> None:
        if self._latest.get(ticket.uri) is ticket:
            del self._latest[ticket.uri]

    def cancel_all(self) -> None:
        for ticket in self._latest.values():
            ticket.cancel()
        self._latest.clear()

    def shutdown(self) -> None:
        self.cancel_all()
        for worker in (self.documents, self.model, self.loader):
            worker.shutdown()


def token_delay_hook(delay_ms: float) -> Callable[[int, int, str], None] | None:
    """The `on_token` callback of the debugging knob CODEGEEX_LSP_TOKEN_DELAY_MS (None when 0)."""
    if delay_ms <= 0:
        return None
    return functools.partial(_sleep_per_token, delay_ms / 1000.0)


def _sleep_per_token(delay_s: float, _index: int, _token: int, _text: str) -> None:
    time.sleep(delay_s)
