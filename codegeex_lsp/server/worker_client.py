"""The server's end of the model worker: start or find it, talk to it, restart it after a crash.

`WorkerClient` holds one connection to the worker of one model (EngineOptions):

- shared mode: the per-user daemon for that model (`protocol.WorkerPaths` in the runtime dir). The
  first server to need it starts it (under a spawn lock, so two servers never start two); the
  others connect to it. A server that exits only closes its connection.
- private mode: a child process on a socketpair, exiting with the connection.

Calls block (they run on the scheduler's loader and model threads, never on the event loop). A
reader thread routes the worker's frames to the waiting calls. When the connection ends without
`bye`, the worker crashed: whatever was in flight fails with WorkerCrashed, and a new worker is
started in the background (with a growing delay while it keeps dying before it answers anything),
so the next request finds it loading or ready. After `bye` (idle timeout, stop) nothing is
restarted until the next request needs it; a request that was refused that way is sent again once.
Only the reader decides between the two: a send that fails because the worker just closed leaves
its request to the reader, which has either read the `bye` before the end or not.

The client that spawns a shared worker hands it a random admin secret (in its environment) and is
the only one that can `stop_worker()` it. `allow_token_delay` (the server's debugging knob) gets a
worker of its own: it is part of the worker's key, so a slowed-down worker is never shared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import itertools
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegeex_lsp import __version__
from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.config import CompletionOptions, EngineOptions, runtime_dir
from codegeex_lsp.errors import BackendError, ModelError, WorkerCrashed, WorkerGone
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.protocol import (
    ADMIN_ENV,
    HELLO_TIMEOUT_S,
    MODEL_ERROR,
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
    completion_from_wire,
    connect,
    fim_to_wire,
    options_to_wire,
    worker_key,
)
from codegeex_lsp.server import logs

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_S = 60.0  # from spawn to a connectable socket (python + our imports, no torch yet)
_MAX_RESTART_DELAY_S = 30.0
_LOG_KEEP_BYTES = 1 << 20

OnToken = Callable[[int, int, str], None]


@dataclass
class _Pending:
    future: Future
    channel: Channel
    on_token: OnToken | None = None


class WorkerClient:
    def __init__(
        self,
        engine: EngineOptions,
        *,
        mode: str = "shared",
        idle_timeout_s: float = 600.0,
        runtime: Path | None = None,
        restart: bool = True,
        allow_token_delay: bool = False,
    ) -> None:
        if mode not in ("shared", "private"):
            raise ValueError(f"worker mode {mode!r}")
        self.engine = engine
        self.mode = mode
        self.idle_timeout_s = idle_timeout_s
        self.allow_token_delay = allow_token_delay
        key_engine = dataclasses.asdict(engine) | ({"allow_token_delay": True} if allow_token_delay else {})
        self.key = worker_key(key_engine, sys.executable, __version__)
        self._admin = ""  # the stop secret of the shared worker this client spawned last
        self._runtime = runtime
        self._restart = restart
        self.on_progress: Callable[[str], None] = lambda _message: None
        self.on_task: Callable[[Progress], None] = lambda _event: None  # background tasks' steps
        self.pid: int | None = None
        self.connections = 0  # workers connected to so far (restarts = connections - 1)
        self.crashes = 0
        self._failing = 0  # crashes since the worker last answered anything
        self._not_before = 0.0
        self._closed = False
        self._channel: Channel | None = None
        self._proc: subprocess.Popen | None = None
        self._pending: dict[int, _Pending] = {}
        self._dead: weakref.WeakSet[Channel] = weakref.WeakSet()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()

    @property
    def paths(self) -> WorkerPaths:
        return WorkerPaths(self._runtime or runtime_dir(), self.key)

    @property
    def connected(self) -> bool:
        return self._channel is not None

    # -- requests --------------------------------------------------------------------------------

    def prepare(self, format_name: str | None) -> Prepared:
        """Wait until the worker's model is loaded and `format_name` resolved (ModelError if not)."""
        future = self._send(lambda rid: Prepare(rid, format_name))
        reply = future.result()
        if isinstance(reply, Error):
            raise (ModelError if reply.kind == MODEL_ERROR else BackendError)(reply.message)
        assert isinstance(reply, Prepared)
        return reply

    def complete(
        self,
        request: FimRequest,
        options: CompletionOptions,
        format_name: str | None = None,
        *,
        cancel: Cancellation | None = None,
        on_token: OnToken | None = None,
        token_delay_ms: float = 0.0,
        document: str | None = None,
    ) -> Completion:
        """One completion; WorkerCrashed if the worker dies meanwhile, BackendError for its errors.
        When `cancel` fires, its callback sends the worker `cancel {id}` at once."""
        wire_request, wire_options = fim_to_wire(request), options_to_wire(options)
        label = logs.request_id.get()
        for attempt in range(2):
            try:
                return self._complete_once(
                    lambda rid: Complete(
                        rid,
                        wire_request,
                        wire_options,
                        format_name,
                        on_token is not None,
                        token_delay_ms,
                        document,
                        label,
                    ),
                    cancel,
                    on_token,
                )
            except WorkerGone:
                if attempt:
                    raise
                log.info("the worker exited before taking the request: sending it again")
        raise AssertionError("unreachable")

    def _complete_once(
        self, make: Callable[[int], Complete], cancel: Cancellation | None, on_token: OnToken | None
    ) -> Completion:
        rid_box: list[int] = []

        def build(rid: int) -> Complete:
            rid_box.append(rid)
            return make(rid)

        future = self._send(build, on_token)
        forget = (
            cancel.on_cancel(functools.partial(self._cancel, rid_box[0]))
            if cancel is not None
            else None
        )
        try:
            reply = future.result()
        finally:
            if forget is not None:
                forget()
        if isinstance(reply, Error):
            raise (ModelError if reply.kind == MODEL_ERROR else BackendError)(reply.message)
        assert isinstance(reply, Result)
        return completion_from_wire(reply.completion)

    def status(self, timeout_s: float = 1.0) -> WorkerStatus | None:
        """The worker's status, or None when not connected (this never starts a worker)."""
        if self._channel is None:
            return None
        try:
            reply = self._send(StatusRequest, connect=False).result(timeout=timeout_s)
        except (BackendError, FutureTimeout, OSError):
            return None
        return reply if isinstance(reply, WorkerStatus) else None

    def stop_worker(self, timeout_s: float = 10.0) -> bool:
        """Ask the worker to exit (every client of a shared one sees it go). False when it refused
        (a shared worker another client spawned) or did not answer; True once it said `bye`."""
        if self._channel is None:
            return False
        try:
            self._send(lambda rid: Stop(rid, self._admin), connect=False).result(timeout=timeout_s)
        except WorkerGone:
            return True  # its `bye`
        except (BackendError, FutureTimeout, OSError):
            return False
        return False  # an error answer: refused

    def close(self) -> None:
        """Leave the worker (a shared one lives on for its other clients and its idle timeout)."""
        self._closed = True
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _send(
        self, make: Callable[[int], Any], on_token: OnToken | None = None, connect: bool = True
    ) -> Future:
        channel = self.connect() if connect else self._channel
        if channel is None:
            raise WorkerGone("not connected to a worker")
        rid = next(self._ids)
        future: Future = Future()
        with self._lock:
            if channel in self._dead:  # lost between connect() and here: its reader is gone
                raise WorkerCrashed("the model worker is gone")
            self._pending[rid] = _Pending(future, channel, on_token)
        try:
            channel.send(make(rid))
        except ProtocolError as exc:  # too big to send: nothing went out
            with self._lock:
                self._pending.pop(rid, None)
            raise BackendError(f"cannot send this request to the model worker: {exc}") from exc
        except OSError as exc:
            # The worker closed (or died): its reader sees the end too, after any `bye` still
            # queued, and fails this request as WorkerGone (resent) or WorkerCrashed. Deciding
            # here would call an idle exit a crash whenever the send loses the race.
            log.info("sending to the model worker failed (%s): its reader reports why", exc)
            with contextlib.suppress(OSError):
                channel.sock.shutdown(socket.SHUT_WR)
        return future

    def _cancel(self, rid: int) -> None:
        """`cancel {rid}` on the connection the request went out on, unless it was answered. Runs
        on the thread that cancels (the event loop): one small frame, nothing waited for."""
        with self._lock:
            pending = self._pending.get(rid)
        if pending is not None:
            with contextlib.suppress(OSError, ProtocolError):
                pending.channel.send(Cancel(rid))

    # -- connection ------------------------------------------------------------------------------

    def connect(self) -> Channel:
        """The live connection, starting (or finding) the worker first if there is none."""
        with self._connect_lock:
            if self._channel is not None:
                return self._channel
            if self._closed:
                raise WorkerGone("this worker client is closed")
            delay_s = self._not_before - time.monotonic()
            if delay_s > 0:
                time.sleep(delay_s)
            channel, welcome = self._open_shared() if self.mode == "shared" else self._open_private()
            with self._lock:
                self._channel = channel
                self.pid = welcome.pid
                self.connections += 1
            log.info("connected to model worker pid %d (%s, key %s)", welcome.pid, self.mode, self.key)
            threading.Thread(
                target=self._read, args=(channel,), name="codegeex-worker-read", daemon=True
            ).start()
            return channel

    def _open_private(self) -> tuple[Channel, Welcome]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = subprocess.Popen(
                [*self._command(), "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # stdout belongs to JSON-RPC; logs go to our stderr
            )
        finally:
            theirs.close()
        channel = Channel(ours)
        return channel, self._handshake(channel, "")

    def _open_shared(self) -> tuple[Channel, Welcome]:
        paths = self.paths
        for attempt in range(3):
            try:
                return self._connect_shared(paths)
            except (FileNotFoundError, ConnectionRefusedError, WorkerGone) as exc:
                log.info("no model worker at %s (%s): starting one", paths.socket, exc)
            except _Refused as exc:
                # A worker that restarted between reading its token and connecting: read it again.
                if attempt == 2:
                    raise BackendError(f"the model worker refused this server: {exc}") from exc
                continue
            self._spawn_shared(paths)
        return self._connect_shared(paths)

    def _connect_shared(self, paths: WorkerPaths) -> tuple[Channel, Welcome]:
        try:
            sock, token = connect(paths)
        except TimeoutError as exc:
            raise WorkerGone(str(exc)) from None
        channel = Channel(sock)
        return channel, self._handshake(channel, token)

    def _handshake(self, channel: Channel, token: str) -> Welcome:
        try:
            channel.sock.settimeout(HELLO_TIMEOUT_S if self.mode == "shared" else SPAWN_TIMEOUT_S)
            channel.send(Hello(token=token, client=f"server {os.getpid()}"))
            reply = channel.receive()
            channel.sock.settimeout(None)
        except (OSError, ConnectionError, ProtocolError) as exc:
            channel.close()
            raise WorkerGone(f"no answer to hello ({exc})") from exc
        if isinstance(reply, Welcome):
            return reply
        channel.close()
        if isinstance(reply, Refused):
            raise _Refused(reply.reason)
        raise WorkerGone("the worker closed the connection instead of answering hello")

    def _spawn_shared(self, paths: WorkerPaths) -> None:
        with _file_lock(paths.spawn_lock, SPAWN_TIMEOUT_S):
            with contextlib.suppress(FileNotFoundError, ConnectionRefusedError, WorkerGone, _Refused):
                channel, _welcome = self._connect_shared(paths)  # another server started it meanwhile
                channel.close()
                return
            log_file = _open_log(paths.log)
            command = [
                *self._command(),
                "--detach",
                "--key",
                self.key,
                "--runtime-dir",
                str(paths.dir),
            ]
            if self.allow_token_delay:
                command.append("--allow-token-delay")
            self._admin = secrets.token_hex(32)
            with log_file:
                starter = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                    start_new_session=True,
                    env={**os.environ, ADMIN_ENV: self._admin},
                )
            starter.wait(SPAWN_TIMEOUT_S)  # it forks and returns at once; the daemon is not our child
            deadline = time.monotonic() + SPAWN_TIMEOUT_S
            while time.monotonic() < deadline:
                if paths.socket.exists() and paths.token.exists():
                    try:
                        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        with probe:
                            probe.connect(str(paths.socket))
                        return
                    except OSError:
                        pass
                time.sleep(0.05)
            raise BackendError(
                f"the model worker did not start within {SPAWN_TIMEOUT_S:.0f} s; its log "
                f"({paths.log}) ends with: {_tail(paths.log)}"
            )

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "codegeex_lsp.worker",
            "--engine",
            json.dumps(dataclasses.asdict(self.engine)),
            "--idle-timeout",
            str(self.idle_timeout_s),
        ]

    # -- the reader ------------------------------------------------------------------------------

    def _read(self, channel: Channel) -> None:
        bye: str | None = None
        reason: str | None = None
        try:
            while True:
                try:
                    message = channel.receive()
                except BadMessage as exc:
                    log.warning("a bad message from the worker: %s; ignored", exc)
                    continue
                if message is None:
                    break
                if isinstance(message, Bye):
                    bye = message.reason
                elif isinstance(message, Progress) and message.task:
                    self.on_task(message)
                elif isinstance(message, Progress):
                    self.on_progress(message.message)
                elif isinstance(message, Token):
                    with self._lock:
                        pending = self._pending.get(message.id)
                    if pending is not None and pending.on_token is not None:
                        try:
                            pending.on_token(message.index, -1, message.text)
                        except Exception:
                            log.exception("on_token callback failed")
                elif isinstance(message, Prepared | Result | Error | WorkerStatus):
                    with self._lock:
                        pending = self._pending.pop(message.id, None)
                    if not isinstance(message, WorkerStatus):
                        self._failing = 0  # the worker works
                    if pending is not None and not pending.future.done():
                        pending.future.set_result(message)
                else:
                    log.warning("unexpected %s from the worker: ignored", type(message).__name__)
        except (OSError, ConnectionError, ProtocolError) as exc:
            reason = str(exc)
        self._lost(channel, bye, reason)

    def _lost(self, channel: Channel, bye: str | None, reason: str | None) -> None:
        with self._lock:
            if channel in self._dead:
                return  # the reader and a failed send both report it: count it once
            self._dead.add(channel)
            if self._channel is channel:
                self._channel = None
            dead = {rid: p for rid, p in self._pending.items() if p.channel is channel}
            for rid in dead:
                del self._pending[rid]
        channel.close()
        if self._proc is not None and self._proc.poll() is None and bye is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(1)
        if bye is None and self._proc is not None and self._proc.returncode == 0:
            bye = "it exited cleanly"  # a private worker's exit status says what a lost `bye` would
        crashed = bye is None and not self._closed
        if bye is not None:
            log.info("model worker pid %s exited: %s", self.pid, bye)
            error: BackendError = WorkerGone(f"the model worker exited ({bye})")
        else:
            error = WorkerCrashed(f"the model worker (pid {self.pid}) died{f' ({reason})' if reason else ''}")
        if crashed:
            self.crashes += 1
            self._failing += 1
            delay_s = min(_MAX_RESTART_DELAY_S, 0.1 * 2 ** (self._failing - 1)) if self._failing > 1 else 0.0
            self._not_before = time.monotonic() + delay_s
            log.warning("%s; %d request(s) failed; restarting it", error, len(dead))
        for pending in dead.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        if crashed and self._restart:
            threading.Thread(
                target=self._restart_quietly, name="codegeex-worker-restart", daemon=True
            ).start()

    def _restart_quietly(self) -> None:
        try:
            self.connect()
        except Exception as exc:  # the next request tries again and reports it
            log.warning("restarting the model worker failed: %s", exc)


class _Refused(Exception):
    """The worker answered hello with `refused`."""


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"timed out waiting for {path} (another server starting the worker)"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _open_log(path: Path):
    """The worker's log, restarted when it grew past a megabyte."""
    try:
        if path.stat().st_size > _LOG_KEEP_BYTES:
            path.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "ab")


def _tail(path: Path, n_chars: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-n_chars:].strip() or "(empty)"
    except OSError:
        return "(no log)"
