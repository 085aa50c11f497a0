"""The model worker process with the tiny model, driven through the server's WorkerClient:
framing, streaming, cancel, crash and restart, idle exit, the private mode, and its security
(runtime dir and socket permissions, the token checked on connect)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import threading
import time

import pytest

from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.config import CompletionOptions, EngineOptions, runtime_dir
from codegeex_lsp.errors import CodegeexError, ModelError, WorkerCrashed
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.protocol import (
    MSGPACK,
    PROTOCOL_VERSION,
    Channel,
    Hello,
    Refused,
    StatusRequest,
    Welcome,
    WorkerStatus,
)
from codegeex_lsp.server.worker_client import WorkerClient
from tests.worker.conftest import live_worker_pids, pid_alive

pytestmark = pytest.mark.timeout(300)

REQUEST = FimRequest(prefix="def add(a, b):\n    ", suffix="\n", language="python", mode="BLOCK")
SHORT = CompletionOptions(max_tokens=8)


def engine(model_dir) -> EngineOptions:
    return EngineOptions(model=str(model_dir), dtype="float32", quant="none", threads=1)


@pytest.fixture(scope="module")
def shared(tiny_glm_dir, module_runtime):
    """One worker for the tests that leave it running (starting one costs a torch import)."""
    made = WorkerClient(
        engine(tiny_glm_dir), runtime=module_runtime, idle_timeout_s=300, allow_token_delay=True
    )
    yield made
    made.stop_worker()
    made.close()


@pytest.fixture
def client(shared):
    return shared


def wait_until(predicate, timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_complete_and_stream(client):
    prepared = client.prepare(None)
    assert prepared.loads == 1 and prepared.n_context > 0 and prepared.format
    texts: list[str] = []
    result = client.complete(
        REQUEST, CompletionOptions(max_tokens=12), on_token=lambda _i, _t, text: texts.append(text)
    )
    assert result.finish_reason in ("stop", "length") and result.generated_tokens > 0
    # Streamed tokens arrive before the result, each the candidate's text so far.
    assert len(texts) == result.generated_tokens and texts[-1] == result.raw[0]
    again = client.complete(REQUEST, CompletionOptions(max_tokens=12))
    assert again.raw == result.raw  # greedy: the same answer
    assert result.completion == ""  # the worker only generates; the server post-processes


def test_cancel_stops_the_decode_between_tokens(client):
    client.prepare(None)
    cancel = Cancellation()
    texts: list[str] = []

    def on_token(_index, _token, text):
        texts.append(text)
        if len(texts) == 2:
            cancel.cancel()  # on the client's reader thread: the `cancel` frame goes out now

    result = client.complete(
        REQUEST, CompletionOptions(max_tokens=200), cancel=cancel, on_token=on_token, token_delay_ms=100
    )
    assert result.finish_reason == "cancelled"
    assert result.generated_tokens < 200 and len(texts) < 200
    assert cancel.n_callbacks == 0  # the request unregistered its callback
    assert client.complete(REQUEST, SHORT).finish_reason != "cancelled"  # and the worker goes on


def test_killed_mid_request_errors_then_next_request_works(tiny_glm_dir, runtime):
    client = WorkerClient(engine(tiny_glm_dir), runtime=runtime, idle_timeout_s=120, allow_token_delay=True)
    client.prepare(None)
    for _ in range(2):
        pid = client.pid
        streaming = threading.Event()

        def kill_on_first_token(_index, _token, _text, pid=pid, streaming=streaming):
            if not streaming.is_set():
                streaming.set()
                os.kill(pid, signal.SIGKILL)

        with pytest.raises(WorkerCrashed, match="died"):
            client.complete(
                REQUEST, CompletionOptions(max_tokens=64), on_token=kill_on_first_token, token_delay_ms=50
            )
        assert streaming.is_set()
        result = client.complete(REQUEST, SHORT)  # a new worker, started after the crash
        assert result.generated_tokens > 0 and client.pid != pid
    assert client.crashes == 2 and client.connections == 3
    client.close()


def test_runtime_dir_and_socket_are_private(client, module_runtime):
    runtime = module_runtime
    client.prepare(None)
    paths = client.paths
    info = os.lstat(runtime)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    sock = os.lstat(paths.socket)
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o600
    token = os.lstat(paths.token)
    assert stat.S_IMODE(token.st_mode) == 0o600 and len(paths.token.read_text().strip()) == 64
    assert stat.S_IMODE(os.lstat(paths.pid).st_mode) == 0o600


def test_runtime_dir_checks(tmp_path, monkeypatch):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    monkeypatch.setenv("CODEGEEX_LSP_RUNTIME_DIR", str(loose))
    assert runtime_dir() == loose and stat.S_IMODE(loose.stat().st_mode) == 0o700  # ours: tightened

    link = tmp_path / "link"
    link.symlink_to(loose)
    monkeypatch.setenv("CODEGEEX_LSP_RUNTIME_DIR", str(link))
    with pytest.raises(CodegeexError, match="not a directory owned by you"):
        runtime_dir()

    if os.getuid() == 0:  # root can make a directory someone else owns
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
        monkeypatch.setenv("CODEGEEX_LSP_RUNTIME_DIR", str(foreign))
        with pytest.raises(CodegeexError, match="not a directory owned by you"):
            runtime_dir()


def raw_connect(path) -> Channel:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    return Channel(sock, MSGPACK)


def test_wrong_token_is_refused(client):
    client.prepare(None)
    paths = client.paths
    token = paths.token.read_text().strip()

    for hello, reason in (
        (Hello(token="0" * 64), "bad token"),
        (Hello(token=""), "bad token"),
        (Hello(token=token, protocol=PROTOCOL_VERSION + 1), "protocol"),
        (StatusRequest(id=1), "must be hello"),
    ):
        channel = raw_connect(paths.socket)
        channel.send(hello)
        reply = channel.receive()
        assert isinstance(reply, Refused) and reason in reply.reason
        assert channel.receive() is None  # and the worker hung up
        channel.close()

    # Garbage instead of a frame: dropped without an answer.
    channel = raw_connect(paths.socket)
    channel.sock.sendall(b"\xff\xff\xff\xff not msgpack")
    with contextlib.suppress(ConnectionResetError):  # it may hang up with our bytes unread
        assert channel.receive() is None
    channel.close()

    # The right token gets in, and the refused ones left nothing behind.
    channel = raw_connect(paths.socket)
    channel.send(Hello(token=token, client="test"))
    assert isinstance(channel.receive(), Welcome)
    channel.send(StatusRequest(id=7))
    status = channel.receive()
    assert isinstance(status, WorkerStatus) and status.id == 7 and status.clients >= 2
    channel.close()
    assert client.complete(REQUEST, SHORT).generated_tokens > 0


def test_idle_timeout_exit_then_started_on_demand(tiny_glm_dir, runtime):
    client = WorkerClient(engine(tiny_glm_dir), runtime=runtime, idle_timeout_s=1.5)
    try:
        client.prepare(None)
        client.complete(REQUEST, SHORT)
        first = client.pid
        assert client.status().idle_timeout_s == 1.5
        # Status polls do not keep it alive; no requests for 1.5 s do end it.
        wait_until(lambda: not pid_alive(first), 30, "the idle worker to exit")
        assert not client.paths.socket.exists() and not client.paths.token.exists()
        wait_until(lambda: not client.connected, 5, "the client to notice")
        assert client.crashes == 0  # an idle exit is not a crash: nothing restarted it
        wait_until(lambda: live_worker_pids(runtime) == [], 30, "its key to be released")

        result = client.complete(REQUEST, SHORT)  # the next request starts a new one
        assert result.generated_tokens > 0 and client.pid != first
    finally:
        client.close()


def test_private_worker_lives_with_its_connection(tiny_glm_dir, runtime):
    client = WorkerClient(engine(tiny_glm_dir), mode="private", idle_timeout_s=120)
    try:
        client.prepare(None)
        assert client.complete(REQUEST, SHORT).generated_tokens > 0
        assert client.status().clients == 1
        assert list(runtime.iterdir()) == []  # no socket: a socketpair with its own child
        pid = client.pid
    finally:
        client.close()
    wait_until(lambda: not pid_alive(pid), 10, "the private worker to exit")


def test_model_that_fails_to_load(tmp_path, runtime):
    client = WorkerClient(engine(tmp_path / "no-such-model"), runtime=runtime)
    try:
        with pytest.raises(ModelError, match="not found"):
            client.prepare(None)
        pid = client.pid
        wait_until(lambda: not pid_alive(pid), 30, "the failed worker to exit")
        assert client.crashes == 0
    finally:
        client.close()
