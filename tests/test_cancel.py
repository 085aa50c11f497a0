"""`Cancellation`: callbacks pushed once, on the cancelling thread; registration after the fact runs
at once; unregistered callbacks never run; one failing callback does not stop the others."""

from __future__ import annotations

import threading

from codegeex_lsp.cancel import Cancellation


def test_callbacks_run_once_on_the_cancelling_thread():
    cancel = Cancellation()
    calls: list[tuple[str, str]] = []
    cancel.on_cancel(lambda: calls.append(("a", threading.current_thread().name)))
    cancel.on_cancel(lambda: calls.append(("b", threading.current_thread().name)))
    assert not cancel.is_cancelled() and calls == []
    canceller = threading.Thread(target=cancel.cancel, name="canceller")
    canceller.start()
    canceller.join()
    cancel.cancel()  # a second cancel pushes nothing more
    assert cancel.is_cancelled()
    assert calls == [("a", "canceller"), ("b", "canceller")]
    assert cancel.n_callbacks == 0


def test_registering_after_the_cancel_runs_at_once():
    cancel = Cancellation()
    cancel.cancel()
    calls: list[str] = []
    forget = cancel.on_cancel(lambda: calls.append("late"))
    assert calls == ["late"]
    forget()  # harmless


def test_unregistered_callbacks_do_not_run():
    cancel = Cancellation()
    calls: list[str] = []
    forget = cancel.on_cancel(lambda: calls.append("gone"))
    cancel.on_cancel(lambda: calls.append("kept"))
    forget()
    assert cancel.n_callbacks == 1
    cancel.cancel()
    assert calls == ["kept"]


def test_a_failing_callback_does_not_stop_the_others(caplog):
    cancel = Cancellation()
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    cancel.on_cancel(broken)
    cancel.on_cancel(lambda: calls.append("after"))
    cancel.cancel()
    assert calls == ["after"]
    assert "a cancel callback failed" in caplog.text


def test_wait_returns_when_cancelled_from_another_thread():
    cancel = Cancellation()
    started = threading.Event()

    def cancel_when_waiting() -> None:
        started.wait()
        cancel.cancel()

    threading.Thread(target=cancel_when_waiting).start()
    started.set()
    assert cancel.wait(None) is True  # no timeout: only the cancel can end this wait
    assert Cancellation().wait(0) is False
