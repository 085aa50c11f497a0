"""The worker's model slot: one model load per process, then a `CompletionService` per prompt format.

The load runs on its own thread, so the worker answers hello and status (and forwards progress)
while torch is imported and the weights are read. Every prompt format a client asks for reuses the
loaded weights (`CompletionService(loaded, format)`); only the first load costs.

int4 (the default) not fully built: the slot serves at once what is built (the float weights, or
the first int4 rung) and builds the rest in the background (`engine.int4_upgrade`), swapping every
service to each rung as it is ready; a decode already running finishes on the weights it started
with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.errors import CodegeexError
from codegeex_lsp.protocol import Progress

if TYPE_CHECKING:
    from codegeex_lsp.engine.int4_upgrade import Int4Upgrade
    from codegeex_lsp.engine.load import LoadedModel
    from codegeex_lsp.engine.service import CompletionService

log = logging.getLogger(__name__)


class ModelSlot:
    def __init__(
        self,
        engine: EngineOptions,
        progress: Callable[[str], None],
        emit: Callable[[Progress], None] = lambda _event: None,
    ) -> None:
        self.engine = engine
        self.state = "loading"
        self.error: str | None = None
        self.loads = 0
        self.load_s = 0.0
        self.quant = ""  # what is served once ready: "none" or "int4 (<recipe>)"
        self.upgrade: Int4Upgrade | None = None  # the background int4 build while it runs
        self._progress = progress
        self._emit = emit
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._services: dict[str | None, CompletionService] = {}
        self._waiters: list[Callable[[], None]] = []

    def start(self) -> None:
        threading.Thread(target=self._load, name="codegeex-worker-load", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            from codegeex_lsp.engine.int4_upgrade import plan
            from codegeex_lsp.engine.service import CompletionService

            engine, upgrade = plan(self.engine, self._emit, self._progress)
            service = CompletionService.load(engine, None, self._progress)
        except CodegeexError as exc:
            self._finish(error=str(exc))
            return
        except Exception as exc:
            log.exception("loading %s failed", self.engine.model)
            self._finish(error=f"unexpected {type(exc).__name__}: {exc}")
            return
        with self._lock:
            self._services[None] = service
            self.loads += 1
            self.load_s = time.perf_counter() - started
            self.quant = service.loaded.quant
            self.upgrade = upgrade
        log.info(
            "model %s loaded in %.1f s (format %s)", service.loaded.name, self.load_s, service.format.name
        )
        self._finish(error=None)
        if upgrade is not None:
            threading.Thread(target=self._upgrade, args=(upgrade,), name="codegeex-int4-build", daemon=True).start()

    def _upgrade(self, upgrade: Int4Upgrade) -> None:
        try:
            upgrade.run(self._switch)
        finally:
            with self._lock:
                self.upgrade = None

    def _switch(self, loaded: LoadedModel) -> None:
        """Serve `loaded` from the next request on (a decode running keeps its weights)."""
        from codegeex_lsp.engine.service import CompletionService

        with self._lock:
            self._services = {key: CompletionService(loaded, key) for key in self._services}
            self.quant = loaded.quant
        log.info("switched to %s", loaded.quant)

    def stop(self) -> None:
        """Stop a background build (the worker is exiting)."""
        upgrade = self.upgrade
        if upgrade is not None:
            upgrade.stop()

    def _finish(self, error: str | None) -> None:
        with self._lock:
            self.state = "error" if error else "ready"
            self.error = error
            waiters, self._waiters = self._waiters, []
        self._ready.set()
        for waiter in waiters:
            waiter()

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the load finished (at once if it has), on the loading thread."""
        with self._lock:
            if not self._ready.is_set():
                self._waiters.append(callback)
                return
        callback()

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._ready.wait(timeout_s)

    def service(self, format_name: str | None) -> CompletionService:
        """The service for a prompt format (None: detected); PromptFormatError if it does not fit."""
        from codegeex_lsp.engine.service import CompletionService

        with self._lock:
            if self.error is not None:
                raise CodegeexError(self.error)
            base = self._services[None]
            key = format_name or None
            if key not in self._services:
                self._services[key] = CompletionService(base.loaded, key)
            return self._services[key]
