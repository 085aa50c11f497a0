"""The model slot: loads a `CompletionService` in the background and reports how it goes.

Loading takes seconds to minutes, so it runs on the scheduler's `loader` thread while the event
loop keeps answering; `engine` (and with it torch) is imported there, on first load, never when the
server module is imported. While the first model loads, completion requests get empty results.
A reload after a configuration change keeps the previous model serving until the new one is
ready; if the new one fails, the slot is empty (state `error`) until a later change fixes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.errors import CodegeexError
from codegeex_lsp.server.options import ModelOptions
from codegeex_lsp.server.scheduler import Worker
from codegeex_lsp.server.status import ModelStatus

if TYPE_CHECKING:
    from codegeex_lsp.engine.service import CompletionService

log = logging.getLogger(__name__)


class LoadReporter(Protocol):
    """How the host tells the user about a load (the app implements it with $/progress)."""

    async def begin(self, title: str) -> object: ...

    def report(self, handle: object, message: str) -> None: ...

    def end(self, handle: object, message: str) -> None: ...

    def failed(self, message: str) -> None: ...


def engine_options(model: ModelOptions) -> EngineOptions:
    return EngineOptions(
        model=model.name,
        dtype=model.dtype,
        threads=model.threads,
        cache_dir=model.cache_dir,
        trust_remote_code=model.trust_remote_code,
    )


def _load_service(
    model: ModelOptions,
    previous: tuple[CompletionService, ModelOptions] | None,
    progress: Callable[[str], None],
) -> CompletionService:
    from codegeex_lsp.engine.service import CompletionService

    if previous is not None and _same_weights(previous[1], model):
        progress(f"switching prompt format to {model.format or 'auto'}")
        return CompletionService(previous[0].loaded, model.format)
    return CompletionService.load(engine_options(model), model.format, progress)


def _same_weights(a: ModelOptions, b: ModelOptions) -> bool:
    return replace(a, format=None) == replace(b, format=None)


class ModelHost:
    def __init__(
        self,
        worker: Worker,
        status: ModelStatus,
        reporter: LoadReporter,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._worker = worker
        self.status = status
        self._reporter = reporter
        self._on_change = on_change
        self.service: CompletionService | None = None
        self.options: ModelOptions | None = None  # the latest requested
        self._loaded_with: ModelOptions | None = None  # what `service` was loaded with
        self._task: asyncio.Task[None] | None = None

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
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        handle = await self._reporter.begin(f"codegeex-lsp: loading {model.name}")

        def progress(message: str) -> None:
            log.info("%s", message)
            loop.call_soon_threadsafe(self._reporter.report, handle, message)

        def job() -> CompletionService | None:
            if generation != self.status.generation:
                return None  # a newer load was requested before this one started
            previous = self.service
            held = (previous, self._loaded_with) if previous is not None and self._loaded_with else None
            return _load_service(model, held, progress)

        try:
            service = await self._worker.run(job)
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
        if service is None or generation != self.status.generation:
            self._reporter.end(handle, "superseded by a newer configuration")
            return
        self.service = service
        self._loaded_with = model
        self.status.state = "ready"
        self.status.model = service.loaded.name
        self.status.format = service.format.name
        self.status.load_s = time.perf_counter() - started
        log.info(
            "model %s ready (format %s) in %.1f s",
            service.loaded.name,
            service.format.name,
            self.status.load_s,
        )
        self._reporter.end(handle, f"{service.loaded.name} ready")
        self._on_change()

    def _finish_error(self, generation: int, message: str, handle: object) -> None:
        self._reporter.end(handle, "failed")
        if generation != self.status.generation:
            return
        self.service = None
        self._loaded_with = None
        self.status.state = "error"
        self.status.error = message
        self.status.format = None
        log.error("%s", message)
        self._reporter.failed(message)
        self._on_change()
