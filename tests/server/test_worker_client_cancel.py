"""Cancellation reaches the model worker as a push: the ticket's callback sends `cancel {id}` the
moment the request is superseded, while the worker is between two tokens.

The worker here is this test, speaking the real protocol (frames, msgpack, hello) over a
socketpair: it sends one token, then blocks reading the next frame, so the order of frames is the
assertion; a client that polled or waited would leave it blocked (the test's timeout fails it)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

import pytest

from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.complete import complete_planned
from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.protocol import (
    MSGPACK,
    Cancel,
    Channel,
    Complete,
    Completion,
    Hello,
    Result,
    StatusRequest,
    Token,
    Welcome,
    WorkerStatus,
    completion_to_wire,
)
from codegeex_lsp.server.backends import ModelInfo, WorkerSession
from codegeex_lsp.server.options import DebounceOptions
from codegeex_lsp.server.scheduler import Scheduler
from codegeex_lsp.server.worker_client import WorkerClient

pytestmark = pytest.mark.timeout(60)

REQUEST = FimRequest(prefix="def add(a, b):\n    ", suffix="\n", language="python", mode="BLOCK")
OPTIONS = CompletionOptions(max_tokens=50)

Script = Callable[[Channel, list[str]], None]


def answer(request_id: int, finish: str, raw: str = "") -> Result:
    completion = Completion("", (), (raw,), "fake", "fim", "BLOCK", 3, len(raw), finish)
    return Result(request_id, completion_to_wire(completion))


def status(request_id: int) -> WorkerStatus:
    return WorkerStatus(request_id, os.getpid(), "k", "fake", "ready", None, 1, 1, 0, 0, False, 0.0, 0.0, 60.0)


class RecordingChannel(Channel):
    """The client's end: notes which thread sent each frame."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.senders: list[tuple[str, str]] = []

    def send(self, message) -> None:
        self.senders.append((message.TYPE, threading.current_thread().name))
        super().send(message)


class FakeWorkerClient(WorkerClient):
    """A private worker that is a thread of this test running `script` after the handshake."""

    def __init__(self, script: Script) -> None:
        super().__init__(EngineOptions(model="fake"), mode="private", restart=False)
        self.script = script
        self.frames: list[str] = []  # what the worker received and sent, in order
        self.failure: BaseException | None = None

    def _open_private(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        threading.Thread(target=self._serve, args=(Channel(theirs, MSGPACK),), daemon=True).start()
        self.channel = RecordingChannel(ours)
        return self.channel, self._handshake(self.channel, "")

    def _serve(self, channel: Channel) -> None:
        try:
            assert isinstance(channel.receive(), Hello)
            channel.send(Welcome(pid=os.getpid(), key="k", version="test"))
            self.script(channel, self.frames)
        except BaseException as exc:  # reported by the test, not lost in this thread
            self.failure = exc
            channel.close()


def receive(channel: Channel, frames: list[str]):
    message = channel.receive()
    frames.append(f"got {message.TYPE}")
    return message


def test_superseding_the_ticket_sends_cancel_before_the_next_token():
    token_sent = threading.Event()

    def script(channel: Channel, frames: list[str]) -> None:
        complete = receive(channel, frames)
        assert isinstance(complete, Complete)
        channel.send(Token(complete.id, 0, "return"))
        frames.append("sent token")
        token_sent.set()
        cancel = receive(channel, frames)  # blocks: no second token until the client said cancel
        assert isinstance(cancel, Cancel) and cancel.id == complete.id
        channel.send(answer(complete.id, "cancelled", "return"))

    client = FakeWorkerClient(script)
    scheduler = Scheduler(DebounceOptions())
    ticket, _ = scheduler.begin("file:///a.py", "1")
    registered = threading.Event()
    register = ticket.on_cancel

    def on_cancel(callback):  # noted, so the keystroke below comes after the client registered
        forget = register(callback)
        registered.set()
        return forget

    ticket.on_cancel = on_cancel  # type: ignore[method-assign]

    def next_keystroke() -> None:  # the event loop: a newer request for the same document
        token_sent.wait()
        registered.wait()
        scheduler.begin("file:///a.py", "2")

    threading.Thread(target=next_keystroke, name="event-loop", daemon=True).start()
    try:
        session = WorkerSession(client, ModelInfo("fake", "fim", 512), None, 0.0)
        result = complete_planned(REQUEST, OPTIONS, session, cancel=ticket, cache_key=ticket.uri)
    finally:
        scheduler.shutdown()
        client.close()
    assert client.failure is None, client.failure
    assert ticket.superseded and result.finish_reason == "cancelled" and result.completion == ""
    assert client.frames == ["got complete", "sent token", "got cancel"]
    # Pushed: the thread that superseded the ticket sent `cancel` itself; the thread waiting for
    # the answer (this one) sent only the request, and no other thread watched the ticket.
    me = threading.current_thread().name
    assert client.channel.senders == [("hello", me), ("complete", me), ("cancel", "event-loop")]
    assert ticket.n_callbacks == 0


def test_a_ticket_cancelled_before_sending_cancels_right_after_the_request():
    def script(channel: Channel, frames: list[str]) -> None:
        complete = receive(channel, frames)
        assert isinstance(receive(channel, frames), Cancel)
        channel.send(answer(complete.id, "cancelled"))

    client = FakeWorkerClient(script)
    cancel = Cancellation()
    cancel.cancel()
    try:
        result = client.complete(REQUEST, OPTIONS, cancel=cancel)
    finally:
        client.close()
    assert client.failure is None, client.failure
    assert result.finish_reason == "cancelled"
    assert client.frames == ["got complete", "got cancel"]


def test_cancelling_after_the_answer_sends_nothing():
    def script(channel: Channel, frames: list[str]) -> None:
        complete = receive(channel, frames)
        channel.send(answer(complete.id, "stop", "a + b"))
        asked = receive(channel, frames)  # the next frame is the status below, not a late cancel
        assert isinstance(asked, StatusRequest)
        channel.send(status(asked.id))

    client = FakeWorkerClient(script)
    cancel = Cancellation()
    try:
        result = client.complete(REQUEST, OPTIONS, cancel=cancel)
        cancel.cancel()
        assert client.status(timeout_s=30) is not None
    finally:
        client.close()
    assert client.failure is None, client.failure
    assert result.finish_reason == "stop" and result.raw == ("a + b",)
    assert client.frames == ["got complete", "got status"]
