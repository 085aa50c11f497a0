"""The editor side of the replay: pygls's `LanguageClient` driving a real `codegeex-lsp serve` over stdio.

Requests carry ids chosen here, so a keystroke can `$/cancelRequest` the previous one as VS Code
does. The server's stderr (its log) is drained into a file: a pipe nobody reads would fill and stall
the server mid-benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

STOP_TIMEOUT_S = 20.0


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


class BenchClient:
    """One server process and the client talking to it."""

    def __init__(self) -> None:
        self.lsp = LanguageClient("codegeex-lsp-bench", "1")
        self._next_id = 0
        self._drain: asyncio.Task[None] | None = None
        self.pid: int | None = None

        @self.lsp.feature(lsp.WORKSPACE_CONFIGURATION)
        def configuration(params: lsp.ConfigurationParams) -> list[None]:
            return [None] * len(params.items)

        for method in (lsp.WINDOW_LOG_MESSAGE, lsp.WINDOW_SHOW_MESSAGE, lsp.PROGRESS):
            self.lsp.feature(method)(_ignore)  # the server's log is in its stderr file already

    async def start(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        await self.lsp.start_io(*command, env=env)
        server = self.lsp._server  # pygls keeps the process here; only its stderr and pid are used
        assert server is not None and server.stderr is not None
        self.pid = server.pid
        self._drain = asyncio.ensure_future(_drain(server.stderr, log_path))

    async def initialize(self, init_options: dict[str, Any]) -> None:
        caps = lsp.ClientCapabilities(
            general=lsp.GeneralClientCapabilities(position_encodings=[lsp.PositionEncodingKind.Utf16]),
            window=lsp.WindowClientCapabilities(work_done_progress=False),
            text_document=lsp.TextDocumentClientCapabilities(
                synchronization=lsp.TextDocumentSyncClientCapabilities(),
                inline_completion=lsp.InlineCompletionClientCapabilities(),
            ),
        )
        await self.lsp.initialize_async(
            lsp.InitializeParams(
                capabilities=caps, process_id=os.getpid(), initialization_options=init_options or None
            )
        )
        self.lsp.initialized(lsp.InitializedParams())

    async def status(self) -> dict[str, Any]:
        return plain(await self.lsp.protocol.send_request_async("codegeex/status", {}))

    def open(self, uri: str, language_id: str, text: str) -> None:
        self.lsp.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)
            )
        )

    def insert(self, uri: str, version: int, line: int, character: int, text: str) -> None:
        at = lsp.Position(line=line, character=character)
        self.lsp.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    lsp.TextDocumentContentChangePartial(range=lsp.Range(start=at, end=at), text=text)
                ],
            )
        )

    def close(self, uri: str) -> None:
        self.lsp.text_document_did_close(
            lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
        )

    def inline(
        self, uri: str, line: int, character: int, *, invoked: bool = False
    ) -> tuple[int, Future[Any]]:
        """Send an inline completion request; (its id, a future of its result)."""
        self._next_id += 1
        kind = (
            lsp.InlineCompletionTriggerKind.Invoked if invoked else lsp.InlineCompletionTriggerKind.Automatic
        )
        params = lsp.InlineCompletionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=character),
            context=lsp.InlineCompletionContext(trigger_kind=kind),
        )
        future = self.lsp.protocol.send_request(
            lsp.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=self._next_id
        )
        return self._next_id, future

    def cancel(self, msg_id: int) -> None:
        self.lsp.protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id=msg_id))

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.lsp.shutdown_async(None), STOP_TIMEOUT_S)
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


def _ignore(_params: Any) -> None:
    return None


async def _drain(stream: asyncio.StreamReader, path: Path) -> None:
    with open(path, "ab") as log:
        while chunk := await stream.read(1 << 16):
            log.write(chunk)
