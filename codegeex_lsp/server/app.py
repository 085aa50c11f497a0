"""The pygls language server: handler registration only.

Handlers unpack lsprotocol params, call the plain objects in this package (DocumentStore,
Completer, ModelHost, parse_options) and convert results back; no logic lives here. Nothing in this
module imports torch: `initialize` is answered at once and the model loads in the background
after `initialized` (see loader.py), by default in a model worker process (backends.py).
Suggestions shown, accepted and dismissed are also counted per language in the local telemetry
store (telemetry.py), flushed every 30 s and on exit.

Messages are framed by framing.py (not pygls' reader): malformed headers get a ParseError and the
server resyncs; a body over CODEGEEX_LSP_MAX_MESSAGE_BYTES (default 64 MiB) is skipped unread.

Debugging knob: CODEGEEX_LSP_TOKEN_DELAY_MS=<ms> sleeps that long after every decoded token, so
cancellation and supersession can be watched (and tested) on a fast model. Never set it otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcMethodNotFound
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from codegeex_lsp import __version__
from codegeex_lsp.protocol import ACCEPTED, DISMISSED, STATUS
from codegeex_lsp.server import convert, logs, transport
from codegeex_lsp.server.backends import make_backend
from codegeex_lsp.server.cache import CompletionCache, TypedThrough
from codegeex_lsp.server.completion import Completer
from codegeex_lsp.server.documents import DocumentStore, Oversized
from codegeex_lsp.server.framing import DEFAULT_MAX_BODY_BYTES
from codegeex_lsp.server.loader import ModelHost
from codegeex_lsp.server.options import SECTION, BackendOptions, ModelOptions, ServerOptions, parse_options
from codegeex_lsp.server.rpc import CodegeexProtocol, is_parse_error, strict_converter
from codegeex_lsp.server.scheduler import Scheduler
from codegeex_lsp.server.status import StatusReport
from codegeex_lsp.telemetry import FLUSH_INTERVAL_S, Telemetry

log = logging.getLogger(__name__)

TOKEN_DELAY_ENV = "CODEGEEX_LSP_TOKEN_DELAY_MS"
MAX_MESSAGE_ENV = "CODEGEEX_LSP_MAX_MESSAGE_BYTES"
_PROGRESS_CREATE_TIMEOUT_S = 5.0


class ProgressReporter:
    """Model-load progress as `$/progress` (when the client supports it) and errors as showMessage."""

    def __init__(self, server: CodegeexServer) -> None:
        self._server = server

    async def begin(self, title: str) -> str | None:
        if not convert.supports_work_done_progress(self._server.client_capabilities):
            return None
        token = f"codegeex-load-{uuid.uuid4().hex[:8]}"
        progress = self._server.work_done_progress
        try:
            await asyncio.wait_for(progress.create_async(token), _PROGRESS_CREATE_TIMEOUT_S)
        except Exception as exc:  # a client that refuses or never answers gets no progress bar
            log.warning("window/workDoneProgress/create failed (%s): no progress shown", exc)
            return None
        progress.begin(token, lsp.WorkDoneProgressBegin(title=title, cancellable=False))
        return token

    def report(self, handle: object, message: str, percentage: int | None = None) -> None:
        if isinstance(handle, str):
            self._server.work_done_progress.report(
                handle, lsp.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def end(self, handle: object, message: str) -> None:
        if isinstance(handle, str):
            self._server.work_done_progress.end(handle, lsp.WorkDoneProgressEnd(message=message))

    def failed(self, message: str) -> None:
        self._server.show(lsp.MessageType.Error, message)


class CodegeexServer(LanguageServer):
    """The server and the objects it wires together; one per process."""

    def __init__(
        self,
        base: ServerOptions,
        backend: BackendOptions | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        super().__init__(
            "codegeex-lsp",
            __version__,
            protocol_cls=CodegeexProtocol,
            converter_factory=strict_converter,
            text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
        )
        self.base = base  # command line (and later initializationOptions) over the defaults
        self.options = base
        self.root: str | None = None
        self.started = False
        self.report = StatusReport()
        self.documents = DocumentStore()
        self.scheduler = Scheduler(base.debounce)
        self.scheduler.debouncer.line_carry = base.context.carry_line
        self.cache = CompletionCache(base.cache.size)
        self.typed = TypedThrough()
        self.telemetry = telemetry or Telemetry(None)
        delay_ms = float(os.environ.get(TOKEN_DELAY_ENV, "0") or 0)
        if delay_ms > 0:
            log.warning(
                "%s=%g: decoding is slowed down on purpose (debugging knob)", TOKEN_DELAY_ENV, delay_ms
            )
        self.host = ModelHost(
            self.scheduler.loader,
            self.report.model,
            ProgressReporter(self),
            make_backend(backend or BackendOptions(), delay_ms),
            on_change=self._model_changed,
            retire=self.scheduler.model,
        )
        self.completer = Completer(
            self.documents,
            self.scheduler,
            self.host,
            self.report.counters,
            self.cache,
            self.typed,
            get_options=lambda: self.options,
            root=lambda: self.root,
            on_shown=self.telemetry.shown,
            on_backend=self._backend_changed,
            decodes=self.report.recent_decodes,
        )
        self.protocol.on_encoding = self._set_encoding
        self.on_loop: Callable[[asyncio.AbstractEventLoop], None] = lambda _loop: None
        self._stopped = False

    # -- transports: pygls' own, read through framing.py ---------------------------------------

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        self._stop_event = threading.Event()
        try:
            transport.run_stdio(self.protocol, self._stop_event, _max_message_bytes(), stdin, stdout)
        finally:
            self.shutdown()

    def start_tcp(self, host: str, port: int) -> None:
        self._stop_event = threading.Event()
        transport.run_tcp(self.protocol, self._stop_event, _max_message_bytes(), host, port)

    # -- plain helpers the handlers call -------------------------------------------------------

    def show(self, kind: lsp.MessageType, message: str) -> None:
        self.window_show_message(lsp.ShowMessageParams(type=kind, message=f"codegeex-lsp: {message}"))

    def _set_encoding(self, encoding: str) -> None:
        self.documents.encoding = encoding  # type: ignore[assignment]
        self.report.position_encoding = encoding

    def _model_changed(self) -> None:
        self.cache.clear()
        self.typed.clear()

    def _backend_changed(self, error: str | None) -> None:
        if error is not None:
            self.show(
                lsp.MessageType.Warning, f"the model backend failed: {error} (retrying on the next request)"
            )
        else:
            self.show(lsp.MessageType.Info, "the model backend answers again")

    def start_telemetry_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush the telemetry counts every FLUSH_INTERVAL_S (off the event loop)."""

        def tick() -> None:
            if self._stopped:
                return
            loop.run_in_executor(None, self.telemetry.flush)
            loop.call_later(FLUSH_INTERVAL_S, tick)

        loop.call_later(FLUSH_INTERVAL_S, tick)

    def apply_options(self, raw: Any, *, base: ServerOptions) -> None:
        """Parse a client payload over `base` and apply it; invalid values were already replaced."""
        options, warnings = parse_options(raw, base)
        if warnings:
            self.show(lsp.MessageType.Warning, "invalid settings ignored: " + "; ".join(warnings))
            for warning in warnings:
                log.warning("setting %s", warning)
        previous, self.options = self.options, options
        self.scheduler.debouncer.options = options.debounce
        self.scheduler.debouncer.line_carry = options.context.carry_line
        self.cache.resize(options.cache.size)
        self.documents.max_bytes = options.documents.max_bytes
        if self.started and options.model != previous.model:
            log.info("model options changed: reloading %s in the background", options.model.name)
            self.host.load(options.model)
        if options.completion != previous.completion or options.context != previous.context:
            self.typed.clear()

    async def status(self) -> dict[str, Any]:
        self.report.open_documents = len(self.documents)
        self.report.cache_entries = len(self.cache)
        session = self.host.session
        if session is None:
            backend: dict[str, Any] = {"kind": self.host.backend.kind}
        else:  # a worker is asked for its state: off the event loop, bounded by a 1 s timeout
            backend = await asyncio.get_running_loop().run_in_executor(None, session.describe)
        return {**self.report.to_wire(backend), "serverVersion": __version__}

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Malformed input is the client's problem: answer it (rpc.py) and log, but never pop up.
        if is_parse_error(error):
            self.protocol.answer_parse_error(error)
        elif isinstance(error, JsonRpcMethodNotFound):
            log.info("%s", error)  # already answered with MethodNotFound
        else:
            log.error("protocol error (%s): %s", getattr(source, "__name__", source), error)

    def stop_work(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.scheduler.shutdown()
        self.telemetry.flush()
        self.host.close()


def _max_message_bytes() -> int:
    raw = os.environ.get(MAX_MESSAGE_ENV, "")
    if raw.strip().isdigit() and int(raw) > 0:
        return int(raw)
    if raw:
        log.warning("%s=%r is not a positive byte count: using %d", MAX_MESSAGE_ENV, raw, DEFAULT_MAX_BODY_BYTES)
    return DEFAULT_MAX_BODY_BYTES


def _request_id(server: CodegeexServer, method: str) -> str:
    msg_id = server.protocol.msg_id
    rid = f"{method}#{msg_id}" if msg_id is not None else method
    logs.request_id.set(rid)
    return rid


def _root_path(params: lsp.InitializeParams) -> str | None:
    if params.workspace_folders:
        return to_fs_path(params.workspace_folders[0].uri)
    if params.root_uri:
        return to_fs_path(params.root_uri)
    return params.root_path


def create_server(
    base: ServerOptions | None = None,
    backend: BackendOptions | None = None,
    telemetry: Telemetry | None = None,
) -> CodegeexServer:
    server = CodegeexServer(base or ServerOptions(), backend, telemetry)
    ls = server

    @ls.feature(lsp.INITIALIZE)
    def initialize(params: lsp.InitializeParams) -> None:
        _request_id(ls, "initialize")
        ls.on_loop(asyncio.get_running_loop())
        ls.start_telemetry_flush(asyncio.get_running_loop())
        ls.root = _root_path(params)
        ls.apply_options(params.initialization_options, base=ls.base)
        ls.base = ls.options  # didChangeConfiguration applies over command line + initializationOptions

    @ls.feature(lsp.INITIALIZED)
    def initialized(_params: lsp.InitializedParams) -> None:
        logs.request_id.set("initialized")
        ls.started = True
        ls.host.load(ls.options.model)

    @ls.feature(lsp.SHUTDOWN)
    def shutdown(_params: None) -> None:
        logs.request_id.set("shutdown")
        ls.stop_work()

    @ls.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        logs.request_id.set("didOpen")
        opened = await ls.scheduler.documents.run(
            lambda: ls.documents.open(doc.uri, doc.text, doc.language_id, doc.version)
        )
        if isinstance(opened, Oversized):
            ls.show(lsp.MessageType.Warning, opened.message())

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        doc = params.text_document
        changes = convert.changes_in(params.content_changes)
        logs.request_id.set("didChange")
        changed = await ls.scheduler.documents.run(lambda: ls.documents.change(doc.uri, changes, doc.version))
        if isinstance(changed, Oversized):
            ls.show(lsp.MessageType.Warning, changed.message())

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        logs.request_id.set("didClose")
        ls.typed.forget(uri)
        ls.scheduler.debouncer.forget(uri)
        await ls.scheduler.documents.run(lambda: ls.documents.close(uri))

    @ls.feature(lsp.TEXT_DOCUMENT_INLINE_COMPLETION, lsp.InlineCompletionOptions())
    async def inline_completion(params: lsp.InlineCompletionParams) -> lsp.InlineCompletionList:
        rid = _request_id(ls, "inline")
        invoked = params.context.trigger_kind == lsp.InlineCompletionTriggerKind.Invoked
        position = convert.position_in(params.position)
        found = await ls.completer.suggest(params.text_document.uri, position, rid, invoked=invoked)
        if found is None:
            return convert.inline_items(None, position)
        text, ctx = found
        return convert.inline_items(text, ctx.position)

    @ls.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(resolve_provider=False))
    async def completion(params: lsp.CompletionParams) -> lsp.CompletionList:
        rid = _request_id(ls, "completion")
        invoked = (
            params.context is not None and params.context.trigger_kind == lsp.CompletionTriggerKind.Invoked
        )
        position = convert.position_in(params.position)
        found = await ls.completer.suggest(params.text_document.uri, position, rid, invoked=invoked)
        if found is None:
            return convert.completion_items(None, "", position, ls.documents.encoding)
        text, ctx = found
        return convert.completion_items(text, ctx.prefix, ctx.position, ls.documents.encoding)

    @ls.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(params: lsp.DidChangeConfigurationParams) -> None:
        logs.request_id.set("didChangeConfiguration")
        settings = params.settings
        if settings is None and _can_pull_configuration(ls):
            pulled = await ls.workspace_configuration_async(
                lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section=SECTION)])
            )
            settings = pulled[0] if pulled else None
        ls.apply_options(settings, base=ls.base)

    @ls.feature(STATUS)
    async def status(_params: Any) -> dict[str, Any]:
        return await ls.status()

    @ls.feature(ACCEPTED)
    def accepted(params: Any) -> None:
        ls.report.counters.accepted += 1
        uri = _uri_of(params)
        ls.telemetry.accepted(uri)
        if uri is not None:
            ls.typed.forget(uri)

    @ls.feature(DISMISSED)
    def dismissed(params: Any) -> None:
        ls.report.counters.dismissed += 1
        uri = _uri_of(params)
        ls.telemetry.dismissed(uri)
        if uri is not None:
            ls.typed.forget(uri)

    return server


def _can_pull_configuration(ls: CodegeexServer) -> bool:
    workspace = ls.client_capabilities.workspace if ls.client_capabilities else None
    return bool(workspace is not None and workspace.configuration)


def _uri_of(params: Any) -> str | None:
    uri = params.get("uri") if isinstance(params, dict) else getattr(params, "uri", None)
    return uri if isinstance(uri, str) else None


def serve(
    model: ModelOptions,
    *,
    tcp: str | None = None,
    verbose: bool = False,
    backend: BackendOptions | None = None,
    telemetry: Telemetry | None = None,
) -> NoReturn:
    """Run the server on stdio (or TCP `HOST:PORT` for debugging) until `exit`, then end the process.

    The exit code follows the spec: 0 after `shutdown` + `exit`, 1 for `exit` alone or when the
    client went away without either.
    """
    logs.configure_stderr_logging(verbose)
    server = create_server(ServerOptions(model=model), backend, telemetry)
    client_log = logs.ClientLogHandler(server.window_log_message, logging.DEBUG if verbose else logging.INFO)
    logging.getLogger().addHandler(client_log)
    server.on_loop = client_log.attach_loop
    server.protocol.on_exit = functools.partial(_end_process, server)
    log.info(
        "codegeex-lsp %s serving (model %s, backend %s)", __version__, model.name, server.host.backend.kind
    )
    if tcp:
        host, _, port = tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    _end_process(server, 0 if server.protocol._shutdown else 1)


def _end_process(server: CodegeexServer, code: int) -> NoReturn:
    log.info("exiting with code %d", code)
    server.stop_work()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(ValueError, OSError):
            stream.flush()
    # Worker threads may sit in a model load or a blocking stdin read; nothing is left to say.
    os._exit(code)
