"""The model slot: loads a backend `Session` in the background and reports how it goes.

Loading takes seconds to minutes, so it runs on the scheduler's `loader` thread while the event
loop keeps answering. With the default worker backend the model loads in the worker process and
this thread only waits for it; with `--in-process` the engine (and torch) is imported here, on
first load, never when the server module is imported. While the first model loads, completion
requests get empty results. A reload after a configuration change keeps the previous session
serving until the new one is ready; if the new one fails, the slot is empty (state `error`) until
a later change fixes it. A replaced session is closed on the model thread, after any decode it
is still running.

A session may go on working after its load: int4 (the default) without its checkpoint serves bf16
and builds int4 in the background. Its steps (`protocol.Progress` with a `task`) arrive on any
thread; one consumer on the event loop turns each task into one `$/progress` bar, in order, and the
task's end updates the status's `quant`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from codegeex_lsp.errors import CodegeexError
from codegeex_lsp.protocol import Progress as TaskProgress
from codegeex_lsp.server.backends import Backend, Session, engine_options
from codegeex_lsp.server.options import ModelOptions
from codegeex_lsp.server.scheduler import SerialExecutor
from codegeex_lsp.server.status import ModelStatus

log = logging.getLogger(__name__)

__all__ = ["LoadReporter", "ModelHost", "engine_options"]  # engine_options: the benchmarks import it here


class LoadReporter(Protocol):
    """How the host tells the user about a load (the app implements it with $/progress)."""

    async def begin(self, title: str) -> object: ...

    def report(self, handle: object, message: str, percentage: int | None = None) -> None: ...

    def end(self, handle: object, message: str) -> None: ...

    def failed(self, message: str) -> None: ...


class ModelHost:
    def __init__(
        self,
        worker: SerialExecutor,
        status: ModelStatus,
        reporter: LoadReporter,
        backend: Backend,
        on_change: Callable[[], None] = lambda: None,
        retire: SerialExecutor | None = None,
    ) -> None:
        self._worker = worker
        self._retire = retire  # where replaced sessions are closed (the model thread)
        self.status = status
        self.backend = backend
        self._reporter = reporter
        self._on_change = on_change
        self.session: Session | None = None
        self.options: ModelOptions | None = None  # the latest requested
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task_events: asyncio.Queue[TaskProgress] | None = None
        self._task_consumer: asyncio.Task[None] | None = None

    @property
    def generation(self) -> int:
        return self.status.generation

    def load(self, model: ModelOptions) -> asyncio.Task[None]:
        """Start loading `model` in the background (a newer call wins over an older one)."""
        self.options = model
        self.status.generation += 1
        generation = self.status.generation
        self.status.state = "loading"
        self.status.model = model.name
        self.status.error = None
        self._task = asyncio.ensure_future(self._load(model, generation))
        return self._task

    async def _load(self, model: ModelOptions, generation: int) -> None:
        loop = self._loop = asyncio.get_running_loop()
        started = time.perf_counter()
        handle = await self._reporter.begin(f"codegeex-lsp: loading {model.name}")

        def progress(message: str) -> None:
            log.info("%s", message)
            loop.call_soon_threadsafe(self._reporter.report, handle, message)

        def job() -> Session | None:
            if generation != self.status.generation:
                return None  # a newer load was requested before this one started
            return self.backend.load(model, self.session, progress, self.task_step)

        try:
            session = await self._worker.run(job)
        except CodegeexError as exc:
            self._finish_error(generation, f"cannot load model {model.name!r}: {exc}", handle)
            return
        except Exception as exc:
            log.exception("loading %s failed", model.name)
            self._finish_error(
                generation,
                f"cannot load model {model.name!r}: unexpected {type(exc).__name__}: {exc}",
                handle,
            )
            return
        if session is None or generation != self.status.generation:
            self._reporter.end(handle, "superseded by a newer configuration")
            if session is not None:
                self._close_unless_shared(session)
            return
        self._replace(session)
        self.status.state = "ready"
        self.status.model = session.info.name
        self.status.format = session.info.format
        self.status.quant = session.info.quant or None
        self.status.load_s = time.perf_counter() - started
        log.info(
            "model %s ready (format %s) in %.1f s", session.info.name, session.info.format, self.status.load_s
        )
        self._reporter.end(handle, f"{session.info.name} ready")
        self._on_change()

    def task_step(self, event: TaskProgress) -> None:
        """One step of a session's background task; callable from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._queue_task_step, event)

    def _queue_task_step(self, event: TaskProgress) -> None:
        if self._task_events is None:
            self._task_events = asyncio.Queue()
            self._task_consumer = asyncio.ensure_future(self._show_task_steps(self._task_events))
        self._task_events.put_nowait(event)

    async def _show_task_steps(self, events: asyncio.Queue[TaskProgress]) -> None:
        """Each task as one progress bar, begun at its first step (a client that connected to a
        shared worker mid-build never saw the begin); the end's `quant` is what is served now."""
        handles: dict[str, object] = {}
        while True:
            event = await events.get()
            try:
                if event.task not in handles and event.stage != "end":
                    handles[event.task] = await self._reporter.begin(event.title or event.task)
                percentage = event.percentage if 0 <= event.percentage <= 100 else None
                self.status.task = None if event.stage == "end" else event.task
                self.status.task_message = event.message
                self.status.task_percentage = percentage
                if event.stage == "end":
                    handle = handles.pop(event.task, None)
                    if handle is not None:
                        self._reporter.end(handle, event.message)
                    if event.quant:
                        self.status.quant = event.quant
                        log.info("now serving %s", event.quant)
                    elif event.message:
                        log.warning("%s", event.message)
                    self._on_change()
                else:
                    self._reporter.report(handles[event.task], event.message, percentage)
            except Exception:  # a progress bar must never stop the steps after it
                log.exception("showing the progress of %s failed", event.task)

    def _finish_error(self, generation: int, message: str, handle: object) -> None:
        self._reporter.end(handle, "failed")
        if generation != self.status.generation:
            return
        self._replace(None)
        self.status.state = "error"
        self.status.error = message
        self.status.format = None
        log.error("%s", message)
        self._reporter.failed(message)
        self._on_change()

    def _replace(self, session: Session | None) -> None:
        old, self.session = self.session, session
        if old is not None and (session is None or old.owner is not session.owner):
            self._close_unless_shared(old)

    def _close_unless_shared(self, session: Session) -> None:
        if self.session is not None and self.session.owner is session.owner:
            return
        if self._retire is not None:
            self._retire.submit(session.close)
        else:
            session.close()

    def close(self) -> None:
        """Close the current session now (the process is ending)."""
        session, self.session = self.session, None
        if session is not None:
            try:
                session.close()
            except Exception as exc:  # nothing to do about it while exiting
                log.warning("closing the model session: %s", exc)
