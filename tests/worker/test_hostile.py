"""Hostile peers against the real shared worker process, over its real Unix socket.

Another client (`victim`, the server's WorkerClient) must keep getting completions and a truthful
status whatever the others send: malformed authenticated messages, slow or oversized hellos,
floods of connections, clients that never read, debugging knobs, `stop` without the right.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from pathlib import Path

import msgpack
import pytest

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.protocol import (
    FRAME_HEADER,
    MAX_FRAME_BYTES,
    MAX_HELLO_FRAME_BYTES,
    MSGPACK,
    Channel,
    Error,
    Hello,
    Refused,
    Result,
    StatusRequest,
    Welcome,
    WorkerStatus,
    fim_to_wire,
    options_to_wire,
)
from codegeex_lsp.server.worker_client import WorkerClient
from codegeex_lsp.worker.daemon import MAX_CLIENTS, MAX_PENDING
from tests.worker.conftest import pid_alive

pytestmark = pytest.mark.timeout(600)

REQUEST = FimRequest(prefix="def add(a, b):\n    ", suffix="\n", language="python", mode="BLOCK")
SHORT = CompletionOptions(max_tokens=8)
GOOD_REQUEST = fim_to_wire(REQUEST)
GOOD_OPTIONS = options_to_wire(SHORT)
HANG_GUARD_S = 120.0  # how long a reply may take before the test calls it a hang (not a timing check)


@pytest.fixture(scope="module")
def victim(tiny_glm_dir, module_runtime):
    """The shared worker's spawner: an ordinary, non-debug client that must keep being served."""
    engine = EngineOptions(model=str(tiny_glm_dir), dtype="float32", quant="none", threads=1)
    client = WorkerClient(engine, runtime=module_runtime, idle_timeout_s=600)
    client.prepare(None)
    yield client
    client.stop_worker()
    client.close()


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))  # blocking: a full backlog makes a non-blocking connect fail at once
    sock.settimeout(HANG_GUARD_S)
    return sock


def authed(victim: WorkerClient) -> Channel:
    """A raw connection past hello, with the real token (a hostile but authorized peer)."""
    channel = Channel(connect(victim.paths.socket), MSGPACK)
    channel.send(Hello(token=victim.paths.token.read_text().strip(), client="hostile"))
    assert isinstance(channel.receive(), Welcome)
    return channel


def frame(data: object) -> bytes:
    payload = msgpack.packb(data, use_bin_type=True)
    return FRAME_HEADER.pack(len(payload)) + payload


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def assert_serving(victim: WorkerClient) -> WorkerStatus:
    """The victim completes, and the worker's status is truthful (ready, nothing stuck)."""
    result = victim.complete(REQUEST, SHORT)
    assert result.generated_tokens > 0 and result.finish_reason in ("stop", "length")
    status = victim.status(timeout_s=HANG_GUARD_S)
    assert status is not None and status.state == "ready" and status.error is None
    assert not status.running and status.queued == 0
    return status


def complete(**changes) -> dict:
    message = {
        "type": "complete",
        "id": 11,
        "request": GOOD_REQUEST,
        "options": GOOD_OPTIONS,
        "format": None,
        "stream": False,
        "token_delay_ms": 0.0,
        "document": None,
        "label": "",
    }
    message.update(changes)
    return {k: v for k, v in message.items() if v is not _DROP}


_DROP = object()


def with_options(**changes) -> dict:
    return complete(options={**GOOD_OPTIONS, **changes})


def with_request(**changes) -> dict:
    return complete(request={**GOOD_REQUEST, **changes})


# Each is one frame that must get exactly one `error` (for id 11 where the frame has that id).
HOSTILE_MESSAGES: list[tuple[str, bytes]] = [
    *[
        (f"request={bad!r}", frame(complete(request=bad)))
        for bad in (None, [], [1, 2], 5, 1.5, "text", True, b"bytes", {})
    ],
    *[
        (f"options={bad!r}", frame(complete(options=bad)))
        for bad in (None, [], ["max_tokens", 8], 5, "x", False, b"o")
    ],
    *[
        (f"request.{k}={v!r}", frame(with_request(**{k: v})))
        for k, v in (
            ("prefix", None),
            ("prefix", 5),
            ("prefix", ["a"]),
            ("suffix", {"a": 1}),
            ("language", 3),
            ("path", 7),
            ("repo_name", []),
            ("mode", "SIDEWAYS"),
            ("mode", None),
            ("references", "abc"),
            ("references", [["only one"]]),
            ("references", [[1, 2]]),
            ("references", [None]),
            ("references", {"a": "b"}),
        )
    ],
    *[
        (f"options.{k}={v!r}", frame(with_options(**{k: v})))
        for k, v in (
            ("max_tokens", -1),
            ("max_tokens", 0),
            ("max_tokens", 10**9),
            ("max_tokens", "8"),
            ("max_tokens", 8.5),
            ("max_tokens", None),
            ("n", 0),
            ("n", 10**6),
            ("temperature", math.nan),
            ("temperature", math.inf),
            ("temperature", -1.0),
            ("temperature", "hot"),
            ("top_p", 0.0),
            ("top_p", 2.0),
            ("top_p", math.nan),
            ("prefix_tokens", -5),
            ("suffix_tokens", 2**40),
            ("seed", -1),
            ("seed", 2**64 - 1),
            ("seed", "s"),
            ("format", 5),
            ("carry_line", "yes"),
        )
    ],
    *[
        (f"complete.{k}={v!r}", frame(complete(**{k: v})))
        for k, v in (
            ("format", 5),
            ("format", ["qwen"]),
            ("stream", "yes"),
            ("token_delay_ms", math.nan),
            ("token_delay_ms", -1.0),
            ("token_delay_ms", 1e30),
            ("token_delay_ms", "slow"),
            ("document", 5),
            ("label", ["x"]),
            ("id", "eleven"),
            ("id", None),
            ("id", 1.5),
            ("id", _DROP),
            ("request", _DROP),
            ("format", "no-such-format"),
        )
    ],
    ("unknown type", frame({"type": "launch_missiles", "id": 11})),
    ("type is an int", frame({"type": 7, "id": 11})),
    ("no type", frame({"id": 11})),
    ("a list", frame([1, 2, 3])),
    ("an int", frame(42)),
    ("nil", frame(None)),
    ("a string", frame("complete")),
    ("not msgpack", FRAME_HEADER.pack(3) + b"\xc1\xc1\xc1"),
    ("truncated map", FRAME_HEADER.pack(2) + b"\x85\xa4"),
    ("empty frame", FRAME_HEADER.pack(0)),
    ("nested 10000 deep", FRAME_HEADER.pack(10000) + b"\x91" * 10000),
    ("prepare format=5", frame({"type": "prepare", "id": 11, "format": 5})),
    ("prepare format unknown", frame({"type": "prepare", "id": 11, "format": "no-such-format"})),
    ("status id=str", frame({"type": "status", "id": "x"})),
    ("cancel id=list", frame({"type": "cancel", "id": [1]})),
    ("stop without the secret", frame({"type": "stop", "id": 11})),
    ("stop with a wrong secret", frame({"type": "stop", "id": 11, "admin": "0" * 64})),
    ("stop with a non-string secret", frame({"type": "stop", "id": 11, "admin": 5})),
    ("hello again", frame({"type": "hello", "token": "x", "id": 11})),
    ("a result", frame({"type": "result", "id": 11, "completion": {}})),
    ("an error", frame({"type": "error", "id": 11, "kind": "x", "message": "y"})),
    ("a welcome", frame({"type": "welcome", "pid": 1, "key": "k", "version": "v"})),
    ("a bye", frame({"type": "bye", "reason": "go away"})),
    ("a token", frame({"type": "token", "id": 11, "index": 0, "text": "t"})),
    ("a worker_status", frame({"type": "worker_status", "id": 11})),
]


def drain_until_status(channel: Channel, status_id: int) -> list[object]:
    """Every message up to the answer to `status {status_id}`, that answer last."""
    seen: list[object] = []
    while True:
        message = channel.receive()
        assert message is not None, "the worker hung up on an authenticated client"
        seen.append(message)
        if isinstance(message, WorkerStatus) and message.id == status_id:
            return seen


def test_hostile_messages_get_errors_and_the_worker_keeps_serving(victim):
    before = assert_serving(victim)
    channel = authed(victim)
    outcomes: dict[str, str] = {}
    for number, (name, data) in enumerate(HOSTILE_MESSAGES, start=1000):
        channel.sock.sendall(data)
        channel.send(StatusRequest(id=number))
        seen = drain_until_status(channel, number)
        errors = [m for m in seen if isinstance(m, Error)]
        if not errors:  # an error found only when decoded (unknown format) comes from the decode thread
            later = channel.receive()
            errors = [later] if isinstance(later, Error) else []
        assert len(errors) == 1, (name, seen)
        assert not [m for m in seen if isinstance(m, Result)], name
        outcomes[name] = errors[0].message
        if errors[0].id not in (0, 11):
            raise AssertionError(f"{name}: answered for id {errors[0].id}")
    assert len(outcomes) == len(HOSTILE_MESSAGES) >= 90  # names are unique: each was tried
    assert "stop refused" in outcomes["stop without the secret"]

    # The hostile connection itself still works, and so does everyone else's.
    channel.sock.sendall(frame(complete(id=77)))
    reply = channel.receive()
    assert isinstance(reply, Result) and reply.id == 77 and reply.completion["generated_tokens"] > 0
    channel.close()
    after = assert_serving(victim)
    assert after.pid == before.pid and after.loads == 1  # never restarted, never reloaded
    # Queued: the unknown-format one (its error came from the decode thread), id 77, the victim's.
    assert after.requests == before.requests + 3


def test_slow_loris_and_oversized_hellos_are_dropped_without_buffering(victim):
    status = assert_serving(victim)
    pid = status.pid
    rss_before = rss_kib(pid)
    path = victim.paths.socket
    held: list[socket.socket] = []
    closed: list[str] = []
    lock = threading.Lock()

    def trickle(sock: socket.socket, data: bytes, what: str) -> None:
        """Send one byte at a time (a byte every 0.2 s) until the worker hangs up."""
        try:
            for byte in data:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
            sock.recv(1)  # all sent: wait for the hang-up
        except OSError:
            pass
        with lock:
            closed.append(what)

    threads = []
    for _ in range(10):  # silent: connect and say nothing
        held.append(connect(path))
    for _ in range(10):  # a hello one byte at a time: each recv is quick, the whole is not
        sock = connect(path)
        hello = frame({"type": "hello", "token": "0" * 64, "client": "x" * 2000})
        threads.append(threading.Thread(target=trickle, args=(sock, hello, "trickle"), daemon=True))
    for _ in range(20):  # 16 MiB of a claimed 64 MiB frame before any hello
        sock = connect(path)
        held.append(sock)

        def flood(sock=sock) -> None:
            try:
                sock.sendall(FRAME_HEADER.pack(MAX_FRAME_BYTES) + b"\0" * (16 << 20))
                sock.recv(1)
            except OSError:
                pass
            with lock:
                closed.append("oversized")

        threads.append(threading.Thread(target=flood, daemon=True))
    for thread in threads:
        thread.start()

    # Meanwhile a real client gets in (it says hello at once) and is served.
    other = WorkerClient(victim.engine, runtime=victim.paths.dir)
    assert other.complete(REQUEST, SHORT).generated_tokens > 0
    other.close()

    for thread in threads:
        thread.join(HANG_GUARD_S)
        assert not thread.is_alive(), "a hostile connection was held open"
    for sock in held:  # the silent ones too: the hello deadline is total
        with contextlib.suppress(OSError):
            assert sock.recv(1) == b""
        sock.close()
    assert closed.count("trickle") == 10 and closed.count("oversized") == 20
    rss_after = rss_kib(pid)
    print(f"worker RSS {rss_before} KiB before 40 hostile connections, {rss_after} KiB after")  # with -s
    # 20 x 16 MiB were offered before any hello; none of it may be kept (generous bound: 64 MiB).
    assert rss_after - rss_before < 64 << 10, (rss_before, rss_after)
    assert_serving(victim)


def wait_for_clients(victim: WorkerClient, n_clients: int) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while (status := victim.status(timeout_s=HANG_GUARD_S)) is None or status.clients != n_clients:
        assert time.monotonic() < deadline, f"the worker still counts {status and status.clients} clients"
        time.sleep(0.05)


def evictions(victim: WorkerClient) -> int:
    return victim.paths.log.read_text(errors="replace").count("too many connections without hello")


def test_pending_and_client_caps(victim):
    paths = victim.paths
    token = paths.token.read_text().strip()
    wait_for_clients(victim, 1)
    # More silent connections than MAX_PENDING: the oldest are hung up on (the worker logs each),
    # and the newest can still say hello.
    evicted_before = evictions(victim)
    silent = [connect(paths.socket) for _ in range(MAX_PENDING + 8)]
    newest = Channel(silent[-1], MSGPACK)
    newest.send(Hello(token=token, client="newest"))
    assert isinstance(newest.receive(), Welcome)
    for sock in silent[:8]:
        with contextlib.suppress(OSError):
            assert sock.recv(1) == b""
    assert evictions(victim) - evicted_before >= 8
    for sock in silent:
        sock.close()
    wait_for_clients(victim, 1)

    # Authenticated clients up to MAX_CLIENTS (the victim holds one), then `refused`.
    clients: list[Channel] = []
    refused = None
    for _ in range(MAX_CLIENTS + 1):
        channel = Channel(connect(paths.socket), MSGPACK)
        channel.send(Hello(token=token, client="many"))
        reply = channel.receive()
        if isinstance(reply, Refused):
            refused = reply
            channel.close()
            break
        assert isinstance(reply, Welcome)
        clients.append(channel)
    assert refused is not None and "too many clients" in refused.reason
    assert len(clients) == MAX_CLIENTS - 1
    for channel in clients:
        channel.close()

    # After the hello, frames are capped too: the connection ends before the payload is read.
    channel = authed(victim)
    channel.sock.sendall(FRAME_HEADER.pack(MAX_FRAME_BYTES + 1))
    with contextlib.suppress(ConnectionResetError):
        assert channel.receive() is None
    channel.close()
    # ... and a hello over MAX_HELLO_FRAME_BYTES is never read.
    sock = connect(paths.socket)
    sock.sendall(FRAME_HEADER.pack(MAX_HELLO_FRAME_BYTES + 1))
    with contextlib.suppress(OSError):
        assert sock.recv(1) == b""
    sock.close()
    assert_serving(victim)


def test_a_client_that_never_reads_is_dropped_not_waited_for(victim):
    before = assert_serving(victim)
    drops_before = victim.paths.log.read_text(errors="replace").count("cannot send")
    hostile = authed(victim)
    hostile.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for rid in range(1, 41):  # streamed tokens fill its socket: it never reads them
        hostile.sock.sendall(
            frame(complete(id=rid, stream=True, options={**GOOD_OPTIONS, "max_tokens": 400}))
        )
    deadline = time.monotonic() + HANG_GUARD_S
    while (status := victim.status(timeout_s=HANG_GUARD_S)) is None or status.queued + status.running < 40:
        if status is not None and status.requests >= before.requests + 40:
            break  # all 40 taken (some may be done, their tokens waiting in the socket)
        assert time.monotonic() < deadline, "the hostile requests were not queued"
        time.sleep(0.02)
    # Queued behind all of those, the victim is still answered: the worker dropped the hostile one.
    assert_serving(victim)
    hostile.sock.settimeout(HANG_GUARD_S)
    with contextlib.suppress(ConnectionResetError):
        while hostile.sock.recv(1 << 16):  # what was sent before the worker hung up, then the end
            pass
    hostile.close()
    assert victim.paths.log.read_text(errors="replace").count("cannot send") > drops_before


def test_token_delay_is_ignored_by_a_shared_worker(victim):
    hostile = authed(victim)
    # 10 s per token (the largest delay accepted) for 64 tokens would stall the worker 10 minutes.
    hostile.sock.sendall(
        frame(complete(id=5, token_delay_ms=10_000.0, options={**GOOD_OPTIONS, "max_tokens": 64}))
    )
    reply = hostile.receive()  # the socket's HANG_GUARD_S turns a stall into a failure
    # 20 tokens or more: had the delay been honoured, that is 200 s, past the guard.
    assert isinstance(reply, Result) and reply.id == 5 and reply.completion["generated_tokens"] >= 20
    hostile.close()
    assert_serving(victim)


def test_only_the_spawner_may_stop_the_shared_worker(victim):
    pid = victim.pid
    hostile = authed(victim)
    hostile.sock.sendall(frame({"type": "stop"}))  # the old message, without id or secret
    reply = hostile.receive()
    assert isinstance(reply, Error) and "stop refused" in reply.message
    hostile.close()
    # Another server's client, connected to the same worker, may not stop it either.
    other = WorkerClient(victim.engine, runtime=victim.paths.dir)
    other.prepare(None)
    assert other.pid == pid
    assert other.stop_worker() is False
    other.close()
    assert pid_alive(pid)
    assert_serving(victim)


def test_the_spawner_stops_it(tiny_glm_dir, runtime):
    engine = EngineOptions(model=str(tiny_glm_dir), dtype="float32", quant="none", threads=1)
    client = WorkerClient(engine, runtime=runtime, idle_timeout_s=600)
    try:
        client.prepare(None)
        pid = client.pid
        assert client.stop_worker() is True
        deadline = time.monotonic() + HANG_GUARD_S
        while pid_alive(pid):
            assert time.monotonic() < deadline, "the stopped worker did not exit"
            time.sleep(0.05)
        assert client.crashes == 0 and not os.path.exists(client.paths.socket)
    finally:
        client.close()
