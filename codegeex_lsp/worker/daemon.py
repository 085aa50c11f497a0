"""The model worker process: serves completions of one model to one or more language servers.

Two ways to be reached, one protocol (`codegeex_lsp.protocol`):

- shared (`--key`): a per-user daemon listening on `<runtime dir>/<key>.sock` (mode 0600, in a
  0700 dir). A client must present the random token from `<key>.token` (0600) in its hello, and
  its peer uid must be ours. `<key>.pid` stays locked while the daemon lives, so two can never
  serve the same key; a stale socket left by a killed one is replaced.
- private (`--fd N`): one inherited socketpair end; the worker exits when that connection closes.

No client can wedge or stall the others: a connection gets `HELLO_TIMEOUT_S` in total to present
a small hello (`MAX_HELLO_FRAME_BYTES`), at most `MAX_PENDING` unauthenticated connections are
held (a new one evicts the oldest) and at most `MAX_CLIENTS` authenticated ones; every message is
type-checked where it arrives and a bad one gets an `error` answer; the decode thread survives any
exception of one request. `token_delay_ms` (a debugging knob) is honoured only by a worker started
with `--allow-token-delay` (the client puts that flag into the worker's key, so such a worker is
never shared with normal servers) or by a private one: in a shared worker it would stall everyone's
decodes, which run one at a time. Only the client that spawned the worker may `stop` it (it handed
the worker a secret through the environment, `ADMIN_ENV`); in private mode the one client may.

Threads: the accept loop (main), one reader per connection, the model load, one decode thread
(completions run one at a time, in arrival order), and the idle watch. The worker exits after
`--idle-timeout` seconds without a prepare/complete (status polls do not count), after
`--orphan-timeout` seconds without any client, or right after its model failed to load (a later
client starts a fresh one, which tries again).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import os
import queue
import secrets
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from codegeex_lsp import __version__
from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.errors import CodegeexError
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.protocol import (
    ADMIN_ENV,
    HELLO_TIMEOUT_S,
    INTERNAL_ERROR,
    MAX_HELLO_FRAME_BYTES,
    MODEL_ERROR,
    REQUEST_ERROR,
    BadMessage,
    Bye,
    Cancel,
    Channel,
    Complete,
    Completion,
    Error,
    Hello,
    Prepare,
    Prepared,
    Progress,
    ProtocolError,
    Refused,
    Result,
    StatusRequest,
    Stop,
    Token,
    Welcome,
    WorkerPaths,
    WorkerStatus,
    admin_allowed,
    completion_to_wire,
    fim_from_wire,
    hello_refusal,
    listen,
    options_from_wire,
    unlisten,
)
from codegeex_lsp.worker.slot import ModelSlot

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT_S = 600.0
DEFAULT_ORPHAN_TIMEOUT_S = 60.0
MAX_PENDING = 32  # connections that have not said hello yet; a new one evicts the oldest
MAX_CLIENTS = 64  # authenticated connections (each editor window's server holds one)
MAX_TOKEN_DELAY_MS = 10_000.0
_STOP_WAIT_S = 10.0
SEND_TIMEOUT_S = 5  # a client whose socket stays full this long is dropped
_LOAD_ERROR_GRACE_S = 0.5  # let the error answers go out before the worker exits
_ACCEPT_POLL_S = 0.25


@dataclass(eq=False)
class _Client:
    channel: Channel
    name: str

    def send(self, message: object) -> bool:
        """False when the client is gone or does not read (SEND_TIMEOUT_S): its connection is then
        shut, its reader drops it and cancels its jobs. Why: the decode thread sends tokens, and
        one client that stops reading must not block it for everyone."""
        try:
            self.channel.send(message)
            return True
        except (OSError, ProtocolError) as exc:
            log.warning("client %s: cannot send %s (%s): dropping it", self.name, type(message).__name__, exc)
            with contextlib.suppress(OSError):
                self.channel.sock.shutdown(socket.SHUT_RDWR)
            return False


@dataclass(eq=False)
class _Job:
    client: _Client
    request: Complete
    fim: FimRequest
    options: CompletionOptions
    token_delay_ms: float = 0.0
    cancel: Cancellation = field(default_factory=Cancellation)


class Worker:
    def __init__(
        self,
        engine: EngineOptions,
        *,
        key: str = "",
        token: str | None = None,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        orphan_timeout_s: float = DEFAULT_ORPHAN_TIMEOUT_S,
        admin: str | None = None,
        allow_token_delay: bool = False,
    ) -> None:
        self.key = key
        self._token = token
        self._admin = admin  # None: any client may stop the worker (private mode: there is one)
        self.allow_token_delay = allow_token_delay
        self.idle_timeout_s = idle_timeout_s
        self.orphan_timeout_s = orphan_timeout_s
        self.slot = ModelSlot(engine, self._broadcast_progress, self._broadcast)
        self._lock = threading.Lock()
        self._clients: set[_Client] = set()
        self._jobs: dict[tuple[int, int], _Job] = {}
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._running: _Job | None = None
        self._requests = 0
        self._started = time.monotonic()
        self._last_activity = self._started
        self._last_client = self._started
        self._stopping = threading.Event()
        self._stopped = threading.Event()  # set once every client was told `bye`
        self._on_stop: list = []
        self._pending: dict[socket.socket, float] = {}  # connections before hello -> when accepted
        self._decoder: threading.Thread | None = None
        self.bad_messages = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.slot.when_done(self._loaded)
        self.slot.start()
        self._decoder = threading.Thread(target=self._decode_loop, name="codegeex-worker-decode", daemon=True)
        self._decoder.start()
        threading.Thread(target=self._watch_idle, name="codegeex-worker-idle", daemon=True).start()

    def _loaded(self) -> None:
        self._touch()
        if self.slot.error is not None:
            log.error("model failed to load: %s", self.slot.error)
            threading.Timer(_LOAD_ERROR_GRACE_S, self.stop, args=("the model failed to load",)).start()

    def serve_listener(self, listener: socket.socket) -> None:
        """Accept clients until stopped."""
        listener.settimeout(_ACCEPT_POLL_S)
        self._on_stop.append(listener.close)
        while not self._stopping.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                raise
            self._admit(sock)
            threading.Thread(
                target=self._serve_connection, args=(sock, True), name="codegeex-worker-conn", daemon=True
            ).start()

    def _admit(self, sock: socket.socket) -> None:
        """Count a new connection as pending; past MAX_PENDING, hang up on the oldest pending one.

        Why evict rather than refuse: a real client says hello at once, so under a flood of silent
        connections the newest is the likeliest to be real."""
        with self._lock:
            self._pending[sock] = time.monotonic()
            evict = list(self._pending)[: max(0, len(self._pending) - MAX_PENDING)]
        for old in evict:
            log.warning("too many connections without hello: dropping the oldest")
            with contextlib.suppress(OSError):
                old.shutdown(socket.SHUT_RDWR)

    def serve_single(self, sock: socket.socket) -> None:
        """Serve one inherited connection; stop when it ends."""
        self._serve_connection(sock, False)
        self.stop("the server closed the connection")

    def stop(self, reason: str) -> None:
        """Tell every client `bye` and close. Returns only once that is done, whoever called first:
        the process exits right after, and a client that sees the connection end without `bye`
        counts a crash and restarts the worker (reloading the model)."""
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
            clients = list(self._clients)
            jobs = list(self._jobs.values())
        if not first:
            self._stopped.wait(_STOP_WAIT_S)
            return
        try:
            log.info("exiting: %s", reason)
            self.slot.stop()
            for hook in self._on_stop:
                with contextlib.suppress(OSError):
                    hook()
            for job in jobs:
                job.cancel.cancel()
            for client in clients:
                client.send(Bye(reason))
                client.channel.close()
            self._queue.put(None)
        finally:
            self._stopped.set()

    def wait_stopped(self, timeout_s: float | None = None) -> bool:
        return self._stopping.wait(timeout_s)

    def _broadcast_progress(self, message: str) -> None:
        self._broadcast(Progress(message))

    def _broadcast(self, event: Progress) -> None:
        log.info("%s", event.message)
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.send(event)

    def _touch(self) -> None:
        with self._lock:
            self._last_activity = time.monotonic()

    def _watch_idle(self) -> None:
        tick_s = max(0.05, min(1.0, self.idle_timeout_s / 4, self.orphan_timeout_s / 4))
        while not self._stopping.wait(tick_s):
            now = time.monotonic()
            with self._lock:
                loading = self.slot.state == "loading" or self.slot.upgrade is not None  # a build too
                busy = self._running is not None or not self._queue.empty() or loading
                idle_s = now - self._last_activity
                orphan_s = 0.0 if self._clients else now - self._last_client
            if busy:
                continue
            if idle_s >= self.idle_timeout_s:
                self.stop(f"idle for {idle_s:.0f} s")
            elif orphan_s >= self.orphan_timeout_s:
                self.stop(f"no clients for {orphan_s:.0f} s")

    # -- connections -----------------------------------------------------------------------------

    def _serve_connection(self, sock: socket.socket, require_token: bool) -> None:
        channel = Channel(sock)
        try:
            hello = self._receive_hello(channel, sock, require_token)
        finally:
            with self._lock:
                self._pending.pop(sock, None)
        if hello is None:
            channel.close()
            return
        # Kernel-side send timeout; reads stay blocking without one (a client may be quiet for hours).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT_S, 0))
        client = _Client(channel, str(hello.client)[:100] or "?")
        with self._lock:
            full = len(self._clients) >= MAX_CLIENTS
            if not full and not self._stopping.is_set():
                self._clients.add(client)
        if full:
            log.warning("refused a client: %d clients already", MAX_CLIENTS)
            client.send(Refused(f"too many clients ({MAX_CLIENTS})"))
            channel.close()
            return
        if self._stopping.is_set():
            client.send(Bye("exiting"))
            channel.close()
            return
        log.info("client %s connected (%d now)", client.name, len(self._clients))
        client.send(Welcome(pid=os.getpid(), key=self.key, version=__version__))
        try:
            while True:
                try:
                    message = channel.receive()
                except BadMessage as exc:
                    self._answer_bad(client, exc)
                    continue
                if message is None:
                    break
                self._dispatch_safely(client, message)
        except (OSError, ConnectionError, ProtocolError) as exc:
            if not self._stopping.is_set():
                log.warning("client %s: %s", client.name, exc)
        finally:
            self._drop(client)

    def _receive_hello(self, channel: Channel, sock: socket.socket, require_token: bool) -> Hello | None:
        """The accepted hello, or None (refused, too slow, too big, gone: nothing more is read)."""
        try:
            # One deadline for the whole hello: a per-recv timeout lets a byte a second hold it forever.
            hello = channel.receive(MAX_HELLO_FRAME_BYTES, deadline=time.monotonic() + HELLO_TIMEOUT_S)
            if hello is None:  # a liveness probe (connect, close): nothing to say
                return None
            refusal = hello_refusal(hello, sock, (self._token or "") if require_token else None)
            if refusal is not None:
                log.warning("refused a client: %s", refusal)
                with contextlib.suppress(OSError, ProtocolError):
                    sock.settimeout(1.0)
                    channel.send(Refused(refusal))
                return None
            sock.settimeout(None)
            return hello
        except (OSError, ConnectionError, ProtocolError) as exc:
            log.warning("dropped a connection before its hello: %s", exc)
            return None

    def _drop(self, client: _Client) -> None:
        with self._lock:
            self._clients.discard(client)
            self._last_client = time.monotonic()
            mine = [job for (owner, _), job in self._jobs.items() if owner == id(client)]
            left = len(self._clients)
        for job in mine:
            job.cancel.cancel()
        client.channel.close()
        log.info("client %s left (%d now)", client.name, left)

    def _answer_bad(self, client: _Client, exc: BadMessage) -> None:
        with self._lock:
            self.bad_messages += 1
        log.warning("client %s sent a bad message: %s", client.name, exc)
        client.send(Error(exc.id if exc.id is not None else 0, REQUEST_ERROR, str(exc)[:500]))

    def _dispatch_safely(self, client: _Client, message: object) -> None:
        """Dispatch; a bug in handling one message answers that message, never ends the connection."""
        try:
            self._dispatch(client, message)
        except Exception as exc:
            log.exception("handling %s from client %s failed", type(message).__name__, client.name)
            request_id = getattr(message, "id", 0)
            client.send(Error(request_id if type(request_id) is int else 0, INTERNAL_ERROR, f"{exc!r}"[:500]))

    def _dispatch(self, client: _Client, message: object) -> None:
        if isinstance(message, Complete):
            job = self._job(client, message)
            if job is None:
                return
            with self._lock:
                self._jobs[(id(client), message.id)] = job
                self._requests += 1
                self._last_activity = time.monotonic()
                stopping = self._stopping.is_set()
            if stopping:  # `stop` cancelled the jobs it saw; this one came after
                job.cancel.cancel()
            self._queue.put(job)
        elif isinstance(message, Cancel):
            with self._lock:
                job = self._jobs.get((id(client), message.id))
            if job is not None:
                job.cancel.cancel()
        elif isinstance(message, Prepare):
            self._touch()
            self.slot.when_done(functools.partial(self._answer_prepare, client, message))
        elif isinstance(message, StatusRequest):
            client.send(self.status(message.id))
        elif isinstance(message, Stop):
            if not admin_allowed(message.admin, self._admin):
                log.warning("client %s asked the worker to stop without the spawner's secret", client.name)
                client.send(
                    Error(
                        message.id,
                        REQUEST_ERROR,
                        "stop refused: only the client that started this shared worker may stop it",
                    )
                )
                return
            log.info("client %s asked the worker to stop", client.name)
            threading.Thread(target=self.stop, args=("stopped by a client",), daemon=True).start()
        else:
            self._answer_bad(
                client,
                BadMessage(f"{message.TYPE} is not a request", getattr(message, "id", None)),  # type: ignore[attr-defined]
            )

    def _job(self, client: _Client, message: Complete) -> _Job | None:
        """The decode job for a `complete`, checked here, on the client's reader: None (and an error
        answer) when it cannot be served, so nothing malformed ever reaches the decode thread."""
        try:
            fim = fim_from_wire(message.request)
            options = options_from_wire(message.options)
            delay_ms = float(message.token_delay_ms)
            if not (math.isfinite(delay_ms) and 0.0 <= delay_ms <= MAX_TOKEN_DELAY_MS):
                raise ProtocolError(f"token_delay_ms must be in [0, {MAX_TOKEN_DELAY_MS:g}]")
        except ProtocolError as exc:
            self._answer_bad(client, BadMessage(str(exc), message.id))
            return None
        if delay_ms and not self.allow_token_delay:
            log.info(
                "client %s: token_delay_ms ignored (a shared worker without --allow-token-delay)", client.name
            )
            delay_ms = 0.0
        return _Job(client, message, fim, options, delay_ms)

    def _answer_prepare(self, client: _Client, message: Prepare) -> None:
        try:
            service = self.slot.service(message.format)
        except CodegeexError as exc:
            kind = MODEL_ERROR if self.slot.error is not None else REQUEST_ERROR
            client.send(Error(message.id, kind, str(exc)))
            return
        except Exception as exc:
            log.exception("prepare failed")
            client.send(Error(message.id, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))
            return
        client.send(
            Prepared(
                id=message.id,
                model=service.loaded.name,
                format=service.format.name,
                n_context=int(service.loaded.model.max_seq_len),
                load_s=self.slot.load_s,
                loads=self.slot.loads,
                quant=self.slot.quant,
            )
        )

    def status(self, request_id: int) -> WorkerStatus:
        """The worker's state as it is: "error" too when the decode thread is gone (it never should)."""
        now = time.monotonic()
        decoding = self._decoder is not None and self._decoder.is_alive()
        with self._lock:
            state, error = self.slot.state, self.slot.error
            if not decoding and not self._stopping.is_set():
                state, error = "error", "the decode thread is not running"
            return WorkerStatus(
                id=request_id,
                pid=os.getpid(),
                key=self.key,
                model=self.slot.engine.model,
                state=state,
                error=error,
                loads=self.slot.loads,
                clients=len(self._clients),
                requests=self._requests,
                queued=self._queue.qsize(),
                running=self._running is not None,
                uptime_s=now - self._started,
                idle_s=now - self._last_activity,
                idle_timeout_s=self.idle_timeout_s,
            )

    # -- decoding --------------------------------------------------------------------------------

    def _decode_loop(self) -> None:
        """One job at a time; an exception fails that job only, and the loop goes on. The answer
        goes out after the job left `running`, so a status asked after it never shows it running."""
        while (job := self._queue.get()) is not None:
            with self._lock:
                self._running = job
            try:
                answer = self._run(job)
            except Exception as exc:
                log.exception("completion %s of %s failed", job.request.id, job.client.name)
                answer = Error(job.request.id, INTERNAL_ERROR, f"{exc!r}"[:500])
            finally:
                with self._lock:
                    self._running = None
                    self._jobs.pop((id(job.client), job.request.id), None)
                    self._last_activity = time.monotonic()
            job.client.send(answer)

    def _run(self, job: _Job) -> Result | Error:
        request = job.request
        if not self.slot.wait(0):  # still loading: wake when it is done or the job is cancelled
            wake = threading.Event()
            forget = job.cancel.on_cancel(wake.set)
            self.slot.when_done(wake.set)
            wake.wait()
            forget()
        if job.cancel.is_cancelled() or not self.slot.wait(0):
            return Result(request.id, completion_to_wire(_cancelled(self.slot, job)))
        try:
            service = self.slot.service(request.format)
        except CodegeexError as exc:
            kind = MODEL_ERROR if self.slot.error is not None else REQUEST_ERROR
            return Error(request.id, kind, str(exc))
        try:
            result = service.generate(
                job.fim,
                job.options,
                cancel=job.cancel,
                on_token=_token_hook(job),
                cache_key=request.document or None,
            )
        except CodegeexError as exc:
            return Error(request.id, REQUEST_ERROR, str(exc))
        return Result(request.id, completion_to_wire(result))


def _token_hook(job: _Job):
    request = job.request
    delay_s = job.token_delay_ms / 1000.0
    if not request.stream and delay_s <= 0:
        return None

    def on_token(index: int, _token: int, text: str) -> None:
        if request.stream and not job.client.send(Token(request.id, index, text)):
            job.cancel.cancel()
        if delay_s:
            time.sleep(delay_s)

    return on_token


def _cancelled(slot: ModelSlot, job: _Job) -> Completion:
    return Completion(
        completion="",
        candidates=(),
        raw=(),
        model=slot.engine.model,
        format=job.request.format or "",
        mode=job.fim.mode,
        prompt_tokens=0,
        generated_tokens=0,
        finish_reason="cancelled",
    )


# -- process entry ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m codegeex_lsp.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--engine", required=True, help="EngineOptions as a JSON object")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--key", help="serve the shared worker `key` in --runtime-dir")
    where.add_argument("--fd", type=int, help="serve one inherited socket (private worker)")
    parser.add_argument("--runtime-dir", help="with --key: the runtime dir (default: the user's)")
    parser.add_argument("--detach", action="store_true", help="fork into the background first")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S)
    parser.add_argument("--orphan-timeout", type=float, default=DEFAULT_ORPHAN_TIMEOUT_S)
    parser.add_argument(
        "--allow-token-delay",
        action="store_true",
        help="honour the clients' token_delay_ms (debugging; a private worker always does)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.detach and os.fork() != 0:
        return 0  # the spawner waits for this parent only; the child is re-parented and lives on
    if args.detach:
        os.setsid()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [worker {os.getpid()}] %(name)s: %(message)s",
    )
    for noisy in ("transformers", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    engine = EngineOptions(**json.loads(args.engine))
    orphan_s = min(args.orphan_timeout, args.idle_timeout)
    admin = os.environ.pop(ADMIN_ENV, "")
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        worker = Worker(
            engine, idle_timeout_s=args.idle_timeout, orphan_timeout_s=orphan_s, allow_token_delay=True
        )
        worker.start()
        worker.serve_single(sock)
        return _exit(0)

    from codegeex_lsp.config import runtime_dir

    paths = WorkerPaths(Path(args.runtime_dir) if args.runtime_dir else runtime_dir(), args.key)
    bound = listen(paths)
    if bound is None:
        log.info("another worker already serves %s", args.key)
        return 0
    listener, token = bound
    log.info("worker %s for %s listening on %s", args.key, engine.model, paths.socket)
    if not admin:
        log.warning("started without %s: no client can stop this worker (it exits when idle)", ADMIN_ENV)
    worker = Worker(
        engine,
        key=args.key,
        token=token,
        idle_timeout_s=args.idle_timeout,
        orphan_timeout_s=orphan_s,
        admin=admin or secrets.token_hex(32),
        allow_token_delay=args.allow_token_delay,
    )
    worker._on_stop.append(functools.partial(unlisten, paths))
    worker.start()
    try:
        worker.serve_listener(listener)
    finally:
        worker.stop("exiting")
        unlisten(paths)
    return _exit(0)


def _exit(code: int) -> int:
    """End now: the load thread may sit in torch, and nothing is left to say."""
    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)
