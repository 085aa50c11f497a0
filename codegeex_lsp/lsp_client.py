"""The one LSP client of the project: pygls's `LanguageClient` driving a real `codegeex-lsp serve`.

Benchmarks (latency replay, infill `--through-lsp`) and tools talk to the server through this
module, as an editor would over stdio, instead of each framing JSON-RPC by hand. `LspClient` is
asyncio (the latency replay sends, cancels and awaits many requests at once); `SyncLspClient`
runs one on a private event loop thread for callers that ask one thing at a time.

Requests carry ids chosen here (1, 2, 3, ...), so a keystroke can `$/cancelRequest` the previous one as VS Code
does. An `on_message` observer sees every message either way as plain JSON (for transcripts). The server's stderr (its log) is drained into a file: a pipe nobody reads would fill and stall
the server. Results come back as plain JSON values (dicts, lists, strings), whatever pygls made of
them, so callers never depend on pygls's structuring of custom methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient
from pygls.protocol import LanguageServerProtocol

from codegeex_lsp.errors import CodegeexError

STOP_TIMEOUT_S = 20.0
STATUS = "codegeex/status"

T = TypeVar("T")

MessageObserver = Callable[[bool, dict[str, Any]], None]
"""Called with (outgoing, message): every JSON-RPC message the client sends or receives."""


def plain(value: Any) -> Any:
    """pygls hands custom results back as namedtuples; make them dicts and lists again."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def suggestion_text(result: Any) -> str:
    """The first non-empty insert text of an inline completion answer ('' for none)."""
    items = getattr(result, "items", None) if result is not None else None
    if items is None:
        items = result or []
    for item in items:
        text = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
        if text:
            return text
    return ""


def inline_params(
    uri: str, line: int, character: int, *, invoked: bool = False
) -> lsp.InlineCompletionParams:
    """`textDocument/inlineCompletion` params at a position; `invoked`: the user asked (no debounce)."""
    kind = lsp.InlineCompletionTriggerKind.Invoked if invoked else lsp.InlineCompletionTriggerKind.Automatic
    return lsp.InlineCompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri),
        position=lsp.Position(line=line, character=character),
        context=lsp.InlineCompletionContext(trigger_kind=kind),
    )


def insert_params(
    uri: str, version: int, line: int, character: int, text: str
) -> lsp.DidChangeTextDocumentParams:
    """An incremental didChange inserting `text` at a position (what typing sends)."""
    at = lsp.Position(line=line, character=character)
    return lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[lsp.TextDocumentContentChangePartial(range=lsp.Range(start=at, end=at), text=text)],
    )


def editor_capabilities(*, progress: bool = False) -> lsp.ClientCapabilities:
    """What an inline-completion editor announces: UTF-16 positions, inline completion, sync."""
    return lsp.ClientCapabilities(
        general=lsp.GeneralClientCapabilities(position_encodings=[lsp.PositionEncodingKind.Utf16]),
        window=lsp.WindowClientCapabilities(work_done_progress=progress),
        text_document=lsp.TextDocumentClientCapabilities(
            synchronization=lsp.TextDocumentSyncClientCapabilities(),
            inline_completion=lsp.InlineCompletionClientCapabilities(),
        ),
    )


class _ObservedProtocol(LanguageServerProtocol):
    """pygls's protocol, handing each whole message either way to `observer` as plain JSON."""

    observer: MessageObserver | None = None

    def _send_data(self, data: Any) -> None:
        if data and self.observer is not None:
            self.observer(True, json.loads(json.dumps(data, default=self._serialize_message)))
        super()._send_data(data)

    def structure_message(self, data: dict[str, Any]) -> Any:
        # pygls parses with this as json's object_hook: inner objects come first and are returned
        # as they are, so a dict carrying "jsonrpc" is a whole message and still plain JSON.
        if self.observer is not None and "jsonrpc" in data:
            self.observer(False, copy.deepcopy(data))
        return super().structure_message(data)


class LspClient:
    """One server process and the pygls client talking to it (asyncio)."""

    def __init__(self, name: str = "codegeex-lsp-client", on_message: MessageObserver | None = None) -> None:
        self.lsp = LanguageClient(name, "1", protocol_cls=_ObservedProtocol)
        self.lsp.protocol.observer = on_message  # type: ignore[attr-defined]
        self._next_id = 0
        self._drain: asyncio.Task[None] | None = None
        self.pid: int | None = None

        @self.lsp.feature(lsp.WORKSPACE_CONFIGURATION)
        def configuration(params: lsp.ConfigurationParams) -> list[None]:
            return [None] * len(params.items)

        for method in (lsp.WINDOW_LOG_MESSAGE, lsp.WINDOW_SHOW_MESSAGE, lsp.PROGRESS):
            self.lsp.feature(method)(_ignore)  # the server's log is in its stderr file already

        @self.lsp.feature(lsp.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def progress_create(_params: lsp.WorkDoneProgressCreateParams) -> None:
            return None

    async def start(self, command: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        """Start `command` (a `serve` command line); its stderr goes to `log_path`."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        await self.lsp.start_io(*command, env=env if env is not None else dict(os.environ))
        server = self.lsp._server  # pygls keeps the process here; only its stderr and pid are used
        assert server is not None and server.stderr is not None
        self.pid = server.pid
        self._drain = asyncio.ensure_future(_drain(server.stderr, log_path))

    @property
    def returncode(self) -> int | None:
        server = self.lsp._server
        return None if server is None else server.returncode

    async def initialize(
        self,
        init_options: dict[str, Any] | None,
        capabilities: lsp.ClientCapabilities | None = None,
        *,
        root_uri: str | None = None,
    ) -> lsp.InitializeResult:
        result = await self.lsp.protocol.send_request_async(
            lsp.INITIALIZE,
            lsp.InitializeParams(
                capabilities=capabilities or editor_capabilities(),
                process_id=os.getpid(),
                root_uri=root_uri,
                client_info=lsp.ClientInfo(name=self.lsp.name),
                initialization_options=init_options or None,
            ),
            msg_id=self._new_id(),
        )
        self.lsp.initialized(lsp.InitializedParams())
        return result

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _typed(self, method: str, params: Any) -> Any:
        """JSON params of a standard method as its lsprotocol type (pygls serializes only those)."""
        types = lsp.METHOD_TO_TYPES.get(method)
        if isinstance(params, dict) and types is not None and types[2] is not None:
            return self.lsp.protocol._converter.structure(params, types[2])
        return params

    async def request(self, method: str, params: Any) -> Any:
        """One request (JSON or lsprotocol params); its result as plain JSON."""
        result = await self.lsp.protocol.send_request_async(
            method, self._typed(method, params), msg_id=self._new_id()
        )
        return plain(self.lsp.protocol._converter.unstructure(result))

    def notify(self, method: str, params: Any) -> None:
        self.lsp.protocol.notify(method, self._typed(method, params))

    async def status(self) -> dict[str, Any]:
        return await self.request(STATUS, {})

    def open(self, uri: str, language_id: str, text: str, version: int = 1) -> None:
        self.lsp.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=uri, language_id=language_id, version=version, text=text
                )
            )
        )

    def insert(self, uri: str, version: int, line: int, character: int, text: str) -> None:
        self.lsp.text_document_did_change(insert_params(uri, version, line, character, text))

    def close(self, uri: str) -> None:
        self.lsp.text_document_did_close(
            lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
        )

    def inline(
        self, uri: str, line: int, character: int, *, invoked: bool = False
    ) -> tuple[int, Future[Any]]:
        """Send an inline completion request; (its id, a future of its result)."""
        msg_id = self._new_id()
        future = self.lsp.protocol.send_request(
            lsp.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, line, character, invoked=invoked), msg_id=msg_id
        )
        return msg_id, future

    def cancel(self, msg_id: int) -> None:
        self.lsp.protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id=msg_id))

    async def stop(self) -> None:
        """shutdown + exit; the process is killed if it does not leave in time."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.lsp.protocol.send_request_async(lsp.SHUTDOWN, None, msg_id=self._new_id()), STOP_TIMEOUT_S
            )
            self.lsp.exit(None)
        server = self.lsp._server
        if server is not None:
            try:
                await asyncio.wait_for(server.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                server.kill()
                await server.wait()
        with contextlib.suppress(Exception):
            await self.lsp.stop()
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)


class SyncLspClient:
    """An `LspClient` on its own event loop thread, for callers that ask one thing at a time.

    A request that the server leaves unanswered past `timeout_s`, or a server that exits, is a
    `CodegeexError` naming the end of the server's log.
    """

    def __init__(
        self,
        command: list[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        name: str = "codegeex-lsp-client",
    ) -> None:
        self.log_path = log_path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lsp-client", daemon=True)
        self._thread.start()
        self.client = self._run(self._make(name), None)
        self._run(self.client.start(command, log_path, env), None)

    async def _make(self, name: str) -> LspClient:
        return LspClient(name)  # pygls binds its futures to the loop current at construction

    def _run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None, what: str = "") -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            if self.client.returncode is not None:
                raise self._died() from None
            raise CodegeexError(f"the language server did not answer {what} in {timeout_s:.0f} s") from None
        except CodegeexError:
            raise
        except Exception as exc:  # pygls: the process is gone, or the server answered an error
            if self.client.returncode is not None:
                raise self._died() from exc
            raise

    def _call_soon(self, fn: Callable[[], Any]) -> None:
        self._run(_call(fn), None)

    def initialize(
        self,
        init_options: dict[str, Any] | None,
        capabilities: lsp.ClientCapabilities | None = None,
        *,
        root_uri: str | None = None,
        timeout_s: float | None = None,
    ) -> lsp.InitializeResult:
        coro = self._watched(self.client.initialize(init_options, capabilities, root_uri=root_uri))
        return self._run(coro, timeout_s, "initialize")

    def call(self, method: str, params: Any, timeout_s: float) -> Any:
        """The result of one request as plain JSON; an error answer is a `CodegeexError`."""
        try:
            return self._run(self._watched(self.client.request(method, params)), timeout_s, method)
        except CodegeexError:
            raise
        except Exception as exc:  # pygls raises the server's error answer as JsonRpc* exceptions
            raise CodegeexError(f"{method} failed: {exc}") from exc

    async def _watched(self, request: Awaitable[T]) -> T:
        """`request`, unless the server process exits first (then a `CodegeexError`)."""
        server = self.client.lsp._server
        assert server is not None
        answer = asyncio.ensure_future(request)
        exited = asyncio.ensure_future(server.wait())
        done, _ = await asyncio.wait({answer, exited}, return_when=asyncio.FIRST_COMPLETED)
        if answer in done:
            exited.cancel()
            return answer.result()
        answer.cancel()
        raise self._died()

    def notify(self, method: str, params: Any) -> None:
        self._call_soon(lambda: self.client.notify(method, params))

    def close(self) -> None:
        """Stop the server (shutdown, exit, kill if it lingers) and the loop thread."""
        try:
            self._run(self.client.stop(), None)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_S)
            self._loop.close()

    def _died(self) -> CodegeexError:
        code = self.client.returncode
        how = "closed its output" if code is None else f"exited with code {code}"
        try:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
        except OSError:
            tail = []
        return CodegeexError(f"the language server {how}; {self.log_path} ends:\n" + "\n".join(tail))


async def _call(fn: Callable[[], Any]) -> None:
    fn()


def _ignore(_params: Any) -> None:
    return None


async def _drain(stream: asyncio.StreamReader, path: Path) -> None:
    with open(path, "ab") as log:
        while chunk := await stream.read(1 << 16):
            log.write(chunk)
            log.flush()
