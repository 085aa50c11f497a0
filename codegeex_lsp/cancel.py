"""A request's cancellation, pushed: whoever can stop the work registers a callback.

Why a push and not a flag to poll: a generator blocked on a socket (the model worker's answer, an
HTTP stream) cannot look at a flag. `on_cancel` runs its callback on the thread that cancels, at
once, so the worker client sends `cancel {id}` and the OpenAI client closes its stream the moment
the editor's request is superseded or cancelled. The in-process decode loop reads the flag
(`is_cancelled`) between tokens, which costs nothing.

Stdlib only: the server, the worker and the remote client all use it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

OnCancel = Callable[[], None]


class Cancellation:
    """Set once (`cancel`), then stays set; callbacks run once each, on the cancelling thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._callbacks: dict[int, OnCancel] = {}
        self._next = 0

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = list(self._callbacks.values()), {}
        for callback in callbacks:
            _call(callback)

    def is_cancelled(self) -> bool:
        return self._event.is_set()

    def on_cancel(self, callback: OnCancel) -> Callable[[], None]:
        """Run `callback` when cancelled (now, on this thread, if it already is); returns the
        function that unregisters it (call it once the work is done)."""
        with self._lock:
            if not self._event.is_set():
                key = self._next
                self._next += 1
                self._callbacks[key] = callback
                return lambda: self._forget(key)
        _call(callback)
        return _nothing

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block up to `timeout_s`, returning True as soon as cancelled (a back-off that a cancel
        cuts short)."""
        return self._event.wait(timeout_s)

    def _forget(self, key: int) -> None:
        with self._lock:
            self._callbacks.pop(key, None)

    @property
    def n_callbacks(self) -> int:
        """Callbacks still registered (tests check that finished work unregistered its own)."""
        with self._lock:
            return len(self._callbacks)


def _call(callback: OnCancel) -> None:
    try:
        callback()
    except Exception:  # one failing callback must not keep the others from running
        log.exception("a cancel callback failed")


def _nothing() -> None:
    pass
