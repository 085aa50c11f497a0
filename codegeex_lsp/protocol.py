"""Wire types shared by the language server, the editor plugins and the model worker (stdlib only).

Two protocols live here, and nothing else: the `codegeex/*` custom LSP methods, and the worker IPC.
The server never imports `worker/` and the worker never imports `server/`; both import this module,
which holds everything the two ends share: message types, the msgpack codec and framing
(`Channel`), the shared worker's rendezvous (`WorkerPaths`, `listen`, `connect`) and its
authentication (the token in `hello`, the peer's uid, the admin secret's `ADMIN_ENV`). Its only
third-party import is msgpack.

Custom LSP methods (namespaced `codegeex/…`, STYLE 7):

- request `codegeex/status` -> the server's status object (model state, counters, backend);
- notifications `codegeex/accepted` and `codegeex/dismissed`, params `{"uri": str}` (optional):
  the client tells us what became of the last suggestion shown for that document.

Worker IPC. One frame per message: a 4-byte big-endian payload length, then one msgpack map whose
`type` names the message (the dataclasses below, field names as keys). A connection starts with the
client's `hello` (the daemon's random token; the protocol version) and the worker's `welcome` or
`refused`. Then, any number at once:

    client -> worker   prepare {id, format}          load (or reuse) the model, resolve a format
                       complete {id, request, ...}   one completion; `stream` asks for tokens
                       cancel {id}                   stop that completion between two tokens
                       status {id}                   the worker's state (no effect on idleness)
                       stop {id, admin}              ask the worker to exit (the spawner only)
    worker -> client   progress {message, task, ...} model-load progress, background tasks (to all)
                       prepared {id, ...}            answer to prepare
                       token {id, index, text}       candidate `index`'s text so far (stream)
                       result {id, completion}       the final answer to complete
                       error {id, kind, message}     the final answer when there is none
                       worker_status {id, ...}       answer to status
                       bye {reason}                  the worker is exiting (idle, stop)

Every `complete` gets exactly one `result` or `error`; a cancelled one gets a `result` whose
finish_reason is "cancelled". A connection that ends without `bye` means the worker crashed: the
client fails what was in flight with an error and starts a new worker for the next request.

Limits, because a shared worker serves every editor of the user and must not be wedged by one
bad peer: before its hello is accepted a connection may send one frame of at most
`MAX_HELLO_FRAME_BYTES`, within `HELLO_TIMEOUT_S` in total; after it, frames of at most
`MAX_FRAME_BYTES`. A frame over the limit ends the connection before its payload is read. A frame
that decodes but is not a valid message (`BadMessage`: unknown type, missing or wrongly typed
fields) is answered with `error` for its id (0 when it has none) and the connection goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import hmac
import json
import math
import os
import secrets
import socket
import struct
import threading
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import msgpack

from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.prompt.types import FimRequest, Reference, ScopeInfo

# -- custom LSP methods ----------------------------------------------------------------------------

STATUS = "codegeex/status"
ACCEPTED = "codegeex/accepted"
DISMISSED = "codegeex/dismissed"

# -- worker IPC ------------------------------------------------------------------------------------

PROTOCOL_VERSION = 1
FRAME_HEADER = struct.Struct(">I")  # payload length in bytes
MAX_FRAME_BYTES = 64 << 20
MAX_HELLO_FRAME_BYTES = 4 << 10  # a hello is ~150 bytes; nothing bigger is read before the token
HELLO_TIMEOUT_S = 5.0  # a connection that has not said hello this long after connecting is dropped

# Error kinds: what the client should make of an `error`.
MODEL_ERROR = "model"  # the model cannot be loaded (message says why); not retried
REQUEST_ERROR = "request"  # this request cannot be served (bad format, prompt too long)
INTERNAL_ERROR = "internal"  # a bug in the worker; logged there with a traceback


class ProtocolError(Exception):
    """Bytes that are not a valid frame or message."""


class BadMessage(ProtocolError):
    """A whole frame that is not a valid message: the framing is intact, so the connection can go on.

    `id` is the frame's integer `id` when it had one, so the answer can name the request.
    """

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.id = request_id


class Codec(NamedTuple):
    """How a message dict becomes frame bytes and back."""

    pack: Callable[[dict[str, Any]], bytes]
    unpack: Callable[[bytes], Any]


MSGPACK = Codec(
    functools.partial(msgpack.packb, use_bin_type=True), functools.partial(msgpack.unpackb, raw=False)
)


_MESSAGES: dict[str, type] = {}


def _message(name: str):
    def register(cls: type) -> type:
        cls.TYPE = name  # type: ignore[attr-defined]
        _MESSAGES[name] = cls
        return cls

    return register


@_message("hello")
@dataclass(frozen=True)
class Hello:
    token: str
    protocol: int = PROTOCOL_VERSION
    client: str = ""


@_message("welcome")
@dataclass(frozen=True)
class Welcome:
    pid: int
    key: str
    version: str
    protocol: int = PROTOCOL_VERSION


@_message("refused")
@dataclass(frozen=True)
class Refused:
    reason: str


@_message("prepare")
@dataclass(frozen=True)
class Prepare:
    id: int
    format: str | None = None


@_message("prepared")
@dataclass(frozen=True)
class Prepared:
    id: int
    model: str
    format: str
    n_context: int
    load_s: float
    loads: int  # model loads this worker process has done (1 when several clients share it)
    quant: str = ""  # the weights served now: "none" (also while int4 builds) or "int4 (<recipe>)"


# Background tasks a worker (or an in-process engine) runs while it serves: `Progress.task`.
INT4_BUILD = "int4-build"


@_message("progress")
@dataclass(frozen=True)
class Progress:
    """Model-load progress (`task` empty), or one step of a background task the model slot runs
    while serving (`task` e.g. INT4_BUILD; `stage` begin | report | end, `percentage` 0-100 or -1).
    An `end` that changed the weights served names them in `quant`."""

    message: str
    task: str = ""
    stage: str = "report"
    title: str = ""
    percentage: int = -1
    quant: str = ""


@_message("complete")
@dataclass(frozen=True)
class Complete:
    id: int
    request: dict[str, Any]  # fim_to_wire
    options: dict[str, Any]  # options_to_wire
    format: str | None = None
    stream: bool = False
    token_delay_ms: float = 0.0  # the server's debugging knob, applied where the decode runs
    document: str | None = None  # the document's URI: the worker may keep per-document state
    label: str = ""  # the server's request id, for the worker's logs


@_message("token")
@dataclass(frozen=True)
class Token:
    id: int
    index: int
    text: str


@_message("result")
@dataclass(frozen=True)
class Result:
    id: int
    completion: dict[str, Any]  # Completion fields


@_message("error")
@dataclass(frozen=True)
class Error:
    id: int
    kind: str
    message: str


@_message("cancel")
@dataclass(frozen=True)
class Cancel:
    id: int


@_message("status")
@dataclass(frozen=True)
class StatusRequest:
    id: int


@_message("worker_status")
@dataclass(frozen=True)
class WorkerStatus:
    id: int
    pid: int
    key: str
    model: str
    state: str  # loading | ready | error
    error: str | None
    loads: int
    clients: int
    requests: int
    queued: int
    running: bool
    uptime_s: float
    idle_s: float
    idle_timeout_s: float


@_message("stop")
@dataclass(frozen=True)
class Stop:
    id: int = 0
    admin: str = ""  # the secret the worker's spawner gave it; other clients may not stop it


@_message("bye")
@dataclass(frozen=True)
class Bye:
    reason: str


Message = (
    Hello
    | Welcome
    | Refused
    | Prepare
    | Prepared
    | Progress
    | Complete
    | Token
    | Result
    | Error
    | Cancel
    | StatusRequest
    | WorkerStatus
    | Stop
    | Bye
)


def to_wire(message: Any) -> dict[str, Any]:
    return {"type": message.TYPE, **{f.name: getattr(message, f.name) for f in dataclasses.fields(message)}}


def from_wire(data: Any) -> Any:
    """The message a decoded frame holds; BadMessage for anything else (wrongly typed fields too)."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise BadMessage("a frame must hold a map with a string `type`")
    raw_id = data.get("id")
    request_id = raw_id if type(raw_id) is int else None
    cls = _MESSAGES.get(data["type"])
    if cls is None:
        raise BadMessage(f"unknown message type {data['type'][:64]!r}", request_id)
    hints = _field_types(cls)
    fields = {k: v for k, v in data.items() if k in hints}
    for name, value in fields.items():
        if not _conforms(value, hints[name]):
            raise BadMessage(
                f"bad {cls.TYPE} message: field {name!r} must be {_describe(hints[name])}, "  # type: ignore[attr-defined]
                f"not {type(value).__name__}",
                request_id,
            )
    try:
        return cls(**fields)
    except TypeError as exc:
        raise BadMessage(f"bad {data['type']} message: {exc}", request_id) from exc


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a decoded msgpack value fits a field's type hint (the hints used in this module)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in typing.get_args(hint))
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return type(value) is int
    if hint is float:
        return type(value) in (int, float)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


class Channel:
    """One framed connection: `send` from any thread, `receive` from one reader thread."""

    def __init__(self, sock: socket.socket, codec: Codec = MSGPACK) -> None:
        self.sock = sock
        self._codec = codec
        self._send_lock = threading.Lock()

    def send(self, message: Any) -> None:
        payload = self._codec.pack(to_wire(message))
        if len(payload) > MAX_FRAME_BYTES:
            raise ProtocolError(f"message of {len(payload)} bytes is over the {MAX_FRAME_BYTES} limit")
        with self._send_lock:
            self.sock.sendall(FRAME_HEADER.pack(len(payload)) + payload)

    def receive(self, max_bytes: int = MAX_FRAME_BYTES, deadline: float | None = None) -> Any | None:
        """The next message, or None when the peer closed the connection between two frames.

        A frame over `max_bytes` raises ProtocolError before its payload is read. With `deadline`
        (time.monotonic()), the whole frame must arrive by then (TimeoutError otherwise): a timeout
        per recv would let a peer that sends a byte now and then hold the connection forever.
        """
        header = self._read_exact(FRAME_HEADER.size, eof_ok=True, deadline=deadline)
        if header is None:
            return None
        (size,) = FRAME_HEADER.unpack(header)
        if size > max_bytes:
            raise ProtocolError(f"frame of {size} bytes is over the {max_bytes} limit")
        payload = self._read_exact(size, eof_ok=False, deadline=deadline)
        assert payload is not None
        try:
            data = self._codec.unpack(payload)
        except Exception as exc:  # the codec's own error types vary
            raise BadMessage(f"undecodable frame: {str(exc)[:200]}") from exc
        return from_wire(data)

    def _read_exact(self, n: int, *, eof_ok: bool, deadline: float | None = None) -> bytes | None:
        chunks: list[bytes] = []
        left = n
        while left:
            if deadline is not None:
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    raise TimeoutError("the peer did not send a whole frame in time")
                self.sock.settimeout(remaining_s)
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                if eof_ok and left == n:
                    return None
                raise ConnectionError("connection closed inside a frame")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


# -- payloads --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """One generation, whichever backend made it, from the decode loop to the worker's `result`.

    The decode loop (`engine.decode.generate`) fills `raw`, `token_ids`, the counts and its timings;
    a generator adds the labels (model, format, mode) and leaves `completion`/`candidates` empty;
    the orchestrator (`complete.complete_planned`) puts the healed, post-processed texts there.
    `timings` are seconds from the request's start (`first_token_s` absent when no token was
    sampled); the decode's token counts are 0 and `token_ids` empty where a backend does not know
    them (a remote server).
    """

    completion: str = ""
    candidates: tuple[str, ...] = ()
    raw: tuple[str, ...] = ()
    model: str = ""
    format: str = ""
    mode: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0  # the longest raw candidate's tokens (its stop token excluded)
    finish_reason: str = "length"  # stop | length | cancelled (the first candidate's)
    timings: dict[str, float] = field(default_factory=dict)
    prefill_tokens: int = 0  # prompt tokens computed by this request
    reused_tokens: int = 0  # prompt tokens whose keys/values came from the document's cache
    draft_tokens: int = 0  # speculative tokens proposed ...
    accepted_tokens: int = 0  # ... and kept
    forward_passes: int = 0  # model calls after the prefill
    token_ids: tuple[tuple[int, ...], ...] = ()  # each raw candidate's, as the decode loop sampled them


_COUNT_FIELDS = ("prefill_tokens", "reused_tokens", "draft_tokens", "accepted_tokens", "forward_passes")


def completion_to_wire(result: Completion) -> dict[str, Any]:
    return dataclasses.asdict(result)


def completion_from_wire(data: dict[str, Any]) -> Completion:
    try:
        return Completion(
            completion=str(data["completion"]),
            candidates=tuple(map(str, data.get("candidates", ()))),
            raw=tuple(map(str, data.get("raw", ()))),
            model=str(data["model"]),
            format=str(data["format"]),
            mode=str(data["mode"]),
            prompt_tokens=int(data["prompt_tokens"]),
            generated_tokens=int(data["generated_tokens"]),
            finish_reason=str(data["finish_reason"]),
            timings={str(k): float(v) for k, v in dict(data.get("timings", {})).items()},
            **{name: int(data.get(name, 0)) for name in _COUNT_FIELDS},
            token_ids=tuple(tuple(map(int, ids)) for ids in data.get("token_ids", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"bad completion: {exc}") from exc


def fim_to_wire(request: FimRequest) -> dict[str, Any]:
    wire = dataclasses.asdict(request)
    wire["references"] = [[r.path, r.text] for r in request.references]
    return wire


_SCOPE_FIELDS = tuple(f.name for f in dataclasses.fields(ScopeInfo))


def _scope_from_wire(data: Any) -> ScopeInfo | None:
    """The request's scope (the decode stops where post-processing would cut a block at its end)."""
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) != set(_SCOPE_FIELDS):
        raise ProtocolError(
            f"bad completion request: `scope` must be null or a map of {', '.join(_SCOPE_FIELDS)}"
        )
    ints = ("start_byte", "end_byte", "start_line", "end_line")
    if (
        data["kind"] not in ("function", "class")
        or not all(type(data[k]) is int and data[k] >= 0 for k in ints)
        or not isinstance(data["node_type"], str)
        or not isinstance(data["indent"], str)
        or not (data["name"] is None or isinstance(data["name"], str))
    ):
        raise ProtocolError("bad completion request: `scope` has a wrongly typed field")
    return ScopeInfo(**data)


_FIM_TEXT_FIELDS = ("prefix", "suffix", "language")
_FIM_OPTIONAL_TEXT_FIELDS = ("path", "repo_name")
_MODES = ("LINE", "BLOCK")


def fim_from_wire(data: Any) -> FimRequest:
    """The FimRequest a `complete` carries; ProtocolError (never another exception) when it is not one."""
    if not isinstance(data, dict):
        raise ProtocolError(f"bad completion request: a map is needed, not {type(data).__name__}")
    if "prefix" not in data:
        raise ProtocolError("bad completion request: no `prefix`")
    for name in _FIM_TEXT_FIELDS:
        if name in data and not isinstance(data[name], str):
            raise ProtocolError(f"bad completion request: `{name}` must be a string")
    for name in _FIM_OPTIONAL_TEXT_FIELDS:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise ProtocolError(f"bad completion request: `{name}` must be a string or null")
    if data.get("mode", "LINE") not in _MODES:
        raise ProtocolError(f"bad completion request: `mode` must be one of {', '.join(_MODES)}")
    refs = data.get("references", ())
    if not isinstance(refs, list | tuple) or not all(
        isinstance(ref, list | tuple) and len(ref) == 2 and all(isinstance(x, str) for x in ref)
        for ref in refs
    ):
        raise ProtocolError("bad completion request: `references` must be a list of [path, text] pairs")
    # Only the checked fields.
    fields = (*_FIM_TEXT_FIELDS, *_FIM_OPTIONAL_TEXT_FIELDS, "mode")
    return FimRequest(
        **{k: v for k, v in data.items() if k in fields},
        references=tuple(Reference(path, text) for path, text in refs),
        scope=_scope_from_wire(data.get("scope")),
    )


def options_to_wire(options: CompletionOptions) -> dict[str, Any]:
    return dataclasses.asdict(options)


# Bounds on what one request may ask of a shared worker (the server's own settings stay well inside).
_INT_OPTION_BOUNDS = {
    "max_tokens": (1, 1 << 15),
    "n": (1, 16),
    "prefix_tokens": (0, 1 << 20),
    "suffix_tokens": (0, 1 << 20),
    "reference_tokens": (0, 1 << 20),
}
_FLOAT_OPTION_BOUNDS = {"temperature": (0.0, 100.0), "top_p": (1e-6, 1.0)}


def options_from_wire(data: Any) -> CompletionOptions:
    """The CompletionOptions a `complete` carries, type- and range-checked (ProtocolError if not)."""
    if not isinstance(data, dict):
        raise ProtocolError(f"bad completion options: a map is needed, not {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(CompletionOptions)}
    values = {k: v for k, v in data.items() if k in known}
    for name, (lo, hi) in _INT_OPTION_BOUNDS.items():
        if name in values and not (type(values[name]) is int and lo <= values[name] <= hi):
            raise ProtocolError(f"bad completion options: `{name}` must be an integer in [{lo}, {hi}]")
    for name, (lo, hi) in _FLOAT_OPTION_BOUNDS.items():
        value = values.get(name, lo)
        if type(value) not in (int, float) or not (math.isfinite(value) and lo <= value <= hi):
            raise ProtocolError(f"bad completion options: `{name}` must be a number in [{lo}, {hi}]")
    seed = values.get("seed")
    if seed is not None and not (type(seed) is int and 0 <= seed < 1 << 63):
        raise ProtocolError("bad completion options: `seed` must be null or an integer in [0, 2**63)")
    if values.get("format") is not None and not isinstance(values["format"], str):
        raise ProtocolError("bad completion options: `format` must be a string or null")
    if not isinstance(values.get("carry_line", True), bool):
        raise ProtocolError("bad completion options: `carry_line` must be a boolean")
    return CompletionOptions(**values)


# -- rendezvous of the shared worker ---------------------------------------------------------------


def worker_key(engine: dict[str, Any], python: str, version: str) -> str:
    """One shared worker per model *and* per installation: the same options from another venv or
    another package version get their own worker."""
    blob = json.dumps(
        {"engine": engine, "python": python, "version": version, "protocol": PROTOCOL_VERSION}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WorkerPaths:
    """The files of the shared worker `key` in the runtime dir."""

    dir: Path
    key: str

    @property
    def socket(self) -> Path:
        return self.dir / f"{self.key}.sock"

    @property
    def token(self) -> Path:
        return self.dir / f"{self.key}.token"

    @property
    def pid(self) -> Path:
        return self.dir / f"{self.key}.pid"  # held locked by the live worker

    @property
    def spawn_lock(self) -> Path:
        return self.dir / f"{self.key}.spawn"  # held by the client that starts a worker

    @property
    def log(self) -> Path:
        return self.dir / f"{self.key}.log"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the user only, replacing it atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def listen(paths: WorkerPaths) -> tuple[socket.socket, str] | None:
    """The daemon's end: lock the key, write a fresh token, bind the socket 0600. None if another
    worker holds the key."""
    lock_fd = os.open(paths.pid, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return None
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, f"{os.getpid()}\n".encode())  # the fd stays open (and locked) until exit
    token = secrets.token_hex(32)
    write_private(paths.token, token)
    with contextlib.suppress(FileNotFoundError):
        paths.socket.unlink()  # a killed worker's leftover: we hold the lock, so it is stale
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is born 0600: no window in which others can connect
    try:
        listener.bind(str(paths.socket))
    finally:
        os.umask(old_umask)
    os.chmod(paths.socket, 0o600)
    listener.listen(socket.SOMAXCONN)
    return listener, token


def unlisten(paths: WorkerPaths) -> None:
    """The daemon's end, on exit: no socket or token left for a client to find."""
    for path in (paths.socket, paths.token):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def connect(paths: WorkerPaths) -> tuple[socket.socket, str]:
    """The client's end: the daemon's socket, connected, and the token its hello must carry.

    FileNotFoundError / ConnectionRefusedError when no daemon serves the key; TimeoutError when its
    backlog stays full (a flood of connections) for HELLO_TIMEOUT_S."""
    token = paths.token.read_text().strip()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(HELLO_TIMEOUT_S)
        deadline = time.monotonic() + HELLO_TIMEOUT_S
        while True:
            try:
                sock.connect(str(paths.socket))
                return sock, token
            except BlockingIOError:  # the backlog is full: wait a bit
                if time.monotonic() > deadline:
                    raise TimeoutError("the model worker's socket stays busy") from None
                time.sleep(0.02)
    except OSError:
        sock.close()
        raise


# -- authentication ---------------------------------------------------------------------------------

ADMIN_ENV = "CODEGEEX_LSP_WORKER_ADMIN"  # the spawner's stop secret (the environment, never argv)


def peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED); None where the platform has no such option."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or sock.family != socket.AF_UNIX:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def hello_refusal(hello: object, sock: socket.socket, token: str | None) -> str | None:
    """Why the daemon refuses a connection's first message (None: accepted). `token` None: no token
    is asked (a private worker's inherited socket)."""
    if not isinstance(hello, Hello):
        return "the first message must be hello"
    if hello.protocol != PROTOCOL_VERSION:
        return f"protocol {hello.protocol} is not this worker's {PROTOCOL_VERSION}"
    uid = peer_uid(sock)
    if uid is not None and uid != os.getuid():
        return "another user's process"
    if token is not None and not hmac.compare_digest(str(hello.token).encode(), token.encode()):
        return "bad token"
    return None


def admin_allowed(secret: str, admin: str | None) -> bool:
    """Whether a `stop` carrying `secret` may stop a worker whose spawner's secret is `admin`
    (None: anyone may, the one client of a private worker)."""
    return admin is None or hmac.compare_digest(secret.encode(), admin.encode())
