"""The orderings behind the flaky idle exit, pinned without timing: the worker's process exit waits
for the `bye` of whichever thread started stopping, and a client whose send loses the race with a
`bye` does not call it a crash. Also: the decode thread survives a job that raises."""

from __future__ import annotations

import socket
import threading

import pytest

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.errors import WorkerCrashed, WorkerGone
from codegeex_lsp.protocol import INTERNAL_ERROR, MSGPACK, Bye, Channel, Error, Result, StatusRequest
from codegeex_lsp.server.worker_client import WorkerClient
from codegeex_lsp.worker import daemon
from codegeex_lsp.worker.daemon import Worker, _Client, _Job

pytestmark = pytest.mark.timeout(120)


class BlockingChannel:
    """A client connection whose send blocks until released (a preempted stopping thread)."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def send(self, message: object) -> None:
        self.entered.set()
        self.release.wait(60)
        self.events.append(f"sent {type(message).__name__}")

    def close(self) -> None:
        self.sock.close()


def test_a_second_stop_returns_only_after_the_first_said_bye():
    worker = Worker(EngineOptions(model="unused"))
    events: list[str] = []
    channel = BlockingChannel(events)
    worker._clients.add(_Client(channel, "editor"))  # type: ignore[arg-type]

    idle = threading.Thread(target=worker.stop, args=("idle for 600 s",))
    idle.start()
    assert channel.entered.wait(60)  # the idle watch is inside stop(), sending bye

    def exiting() -> None:  # the main thread on its way to os._exit
        worker.stop("exiting")
        events.append("second stop returned")

    main = threading.Thread(target=exiting)
    main.start()
    main.join(0.5)  # a stop() that returned at once would have recorded it by now
    channel.release.set()
    idle.join(60)
    main.join(60)
    assert events == ["sent Bye", "second stop returned"]


def make_client_on(sock: socket.socket, tiny: EngineOptions) -> tuple[WorkerClient, Channel]:
    client = WorkerClient(tiny, restart=False)
    channel = Channel(sock, MSGPACK)
    client._channel = channel
    return client, channel


def test_a_send_that_loses_the_race_with_bye_is_not_a_crash():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    client, channel = make_client_on(ours, EngineOptions(model="unused"))
    worker_end = Channel(theirs, MSGPACK)
    worker_end.send(Bye("idle for 600 s"))
    worker_end.close()  # the worker is gone; our reader has not read the bye yet

    future = client._send(StatusRequest, connect=False)  # the send fails: the peer closed
    assert client.crashes == 0 and not future.done()
    reader = threading.Thread(target=client._read, args=(channel,))
    reader.start()
    reader.join(60)
    with pytest.raises(WorkerGone):  # resent once by complete(), not failed as a crash
        future.result(60)
    assert client.crashes == 0


def test_an_end_without_bye_is_still_a_crash():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    client, channel = make_client_on(ours, EngineOptions(model="unused"))
    future = client._send(StatusRequest, connect=False)
    theirs.close()
    client._read(channel)
    with pytest.raises(WorkerCrashed):
        future.result(60)
    assert client.crashes == 1


class RecordingChannel:
    def __init__(self) -> None:
        self.sent: list[object] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def send(self, message: object) -> None:
        self.sent.append(message)

    def close(self) -> None:
        self.sock.close()


def test_the_decode_thread_survives_a_job_that_raises(monkeypatch):
    worker = Worker(EngineOptions(model="unused"))
    channel = RecordingChannel()
    client = _Client(channel, "editor")  # type: ignore[arg-type]
    fim, options = daemon.fim_from_wire({"prefix": "x"}), daemon.options_from_wire({})
    calls: list[int] = []

    def run(job: _Job):
        calls.append(job.request.id)
        if job.request.id == 1:
            raise RuntimeError("a bug in one request")
        return Result(job.request.id, {"ok": True})

    monkeypatch.setattr(worker, "_run", run)
    worker._decoder = threading.Thread(target=worker._decode_loop)
    worker._decoder.start()
    for rid in (1, 2):
        request = daemon.Complete(rid, {"prefix": "x"}, {})
        worker._queue.put(_Job(client, request, fim, options))
    worker._queue.put(None)
    worker._decoder.join(60)
    assert calls == [1, 2]
    first, second = channel.sent
    assert isinstance(first, Error) and first.id == 1 and first.kind == INTERNAL_ERROR
    assert "a bug in one request" in first.message
    assert isinstance(second, Result) and second.id == 2

    # A decode thread that is gone (it never should be) shows in the status, not as "ready".
    status = worker.status(9)
    assert status.state == "error" and "decode thread" in (status.error or "")
