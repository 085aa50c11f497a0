"""Logging for the server: every record carries the request id; output goes to stderr and the client.

stdout belongs to JSON-RPC, so nothing here writes to it. The request id lives in a context
variable: asyncio tasks inherit it and `scheduler.SerialExecutor` copies it into its threads, so records
from the documents and model threads name the request they work for. Records of this package at
or above the client level are also sent as `window/logMessage`.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Callable

from lsprotocol import types as lsp

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("codegeex_request_id", default="-")

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
_PACKAGE = "codegeex_lsp"
_LSP_TYPES = {
    logging.ERROR: lsp.MessageType.Error,
    logging.WARNING: lsp.MessageType.Warning,
    logging.INFO: lsp.MessageType.Info,
    logging.DEBUG: lsp.MessageType.Log,
}


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` (the current request, or '-') to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class ClientLogHandler(logging.Handler):
    """Forwards this package's records to the client as `window/logMessage`.

    `send` must be called on the event loop thread; records from other threads are handed over
    with `call_soon_threadsafe`. A record emitted while sending is dropped (no feedback loops).
    """

    def __init__(self, send: Callable[[lsp.LogMessageParams], None], level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._send = send
        self._loop = None
        self._loop_thread: int | None = None
        self._busy = threading.local()
        self.addFilter(RequestIdFilter())
        self.setFormatter(logging.Formatter("[%(request_id)s] %(name)s: %(message)s"))

    def attach_loop(self, loop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(_PACKAGE) or self._loop is None or getattr(self._busy, "on", False):
            return
        try:
            params = lsp.LogMessageParams(
                type=_LSP_TYPES.get(record.levelno, lsp.MessageType.Error), message=self.format(record)
            )
            if threading.get_ident() == self._loop_thread:
                self._deliver(params)
            elif not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._deliver, params)
        except Exception:
            self.handleError(record)

    def _deliver(self, params: lsp.LogMessageParams) -> None:
        self._busy.on = True
        try:
            self._send(params)
        except Exception:  # the client is gone; stderr still has the record
            pass
        finally:
            self._busy.on = False


def configure_stderr_logging(verbose: bool) -> None:
    """Records to stderr with request ids; pygls' own chatter (it logs every message) stays quiet."""
    if hasattr(sys.stderr, "reconfigure"):
        sys.stderr.reconfigure(errors="backslashreplace")  # lone surrogates from clients in messages
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("pygls").setLevel(logging.WARNING)
    for noisy in ("transformers", "urllib3", "filelock", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
