"""Driving the real `codegeex-lsp serve` process: pytest-lsp clients and a raw-bytes harness."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pytest_lsp.client import LanguageClient, make_test_lsp_client

from codegeex_lsp.lsp_client import inline_params, insert_params, plain

READY_TIMEOUT_S = 180.0
FAST_DEBOUNCE = {"minMs": 0, "maxMs": 0, "initialMs": 0}


def server_command(model: str | Path, *extra: str) -> list[str]:
    """The tiny model in float32 (not int4: these tests are about the server) on one torch thread (the test machine's cores are shared);
    later `extra` flags override these."""
    return [
        sys.executable,
        "-m",
        "codegeex_lsp.cli",
        "serve",
        "--model",
        str(model),
        "--threads",
        "1",
        "--dtype",
        "float32",
        "--quant",
        "none",
        *extra,
    ]


def capabilities(
    *,
    inline: bool = True,
    encodings: list[str] | None = None,
    progress: bool = True,
    configuration: bool = False,
) -> lsp.ClientCapabilities:
    return lsp.ClientCapabilities(
        general=lsp.GeneralClientCapabilities(position_encodings=encodings) if encodings else None,
        window=lsp.WindowClientCapabilities(work_done_progress=progress),
        workspace=lsp.WorkspaceClientCapabilities(configuration=configuration),
        text_document=lsp.TextDocumentClientCapabilities(
            synchronization=lsp.TextDocumentSyncClientCapabilities(),
            inline_completion=lsp.InlineCompletionClientCapabilities() if inline else None,
            completion=lsp.CompletionClientCapabilities(),
        ),
    )


async def start_client(
    model: str | Path,
    *,
    env: dict[str, str] | None = None,
    caps: lsp.ClientCapabilities | None = None,
    init_options: dict[str, Any] | None = None,
    extra: tuple[str, ...] = (),
) -> tuple[LanguageClient, lsp.InitializeResult]:
    client = make_test_lsp_client()
    await client.start_io(*server_command(model, *extra), env={**os.environ, **(env or {})})
    result = await client.initialize_session(
        lsp.InitializeParams(capabilities=caps or capabilities(), initialization_options=init_options)
    )
    return client, result


async def status(client: LanguageClient) -> dict[str, Any]:
    return plain(await client.protocol.send_request_async("codegeex/status", {}))


async def wait_state(
    client: LanguageClient, states: tuple[str, ...] = ("ready",), timeout_s: float = READY_TIMEOUT_S
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        current = await status(client)
        if current["state"] in states:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"server stuck in {current['state']!r}: {current}")
        await asyncio.sleep(0.1)


async def stop_client(client: LanguageClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_session(), 30)
    finally:
        await client.stop()


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python", version: int = 1) -> None:
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)
        )
    )


def insert(client: LanguageClient, uri: str, version: int, line: int, character: int, text: str) -> None:
    client.text_document_did_change(insert_params(uri, version, line, character, text))


async def inline(
    client: LanguageClient, uri: str, line: int, character: int, *, invoked: bool = False
) -> lsp.InlineCompletionList:
    result = await client.text_document_inline_completion_async(
        inline_params(uri, line, character, invoked=invoked)
    )
    assert isinstance(result, lsp.InlineCompletionList), result
    return result


def suggestion(result: lsp.InlineCompletionList) -> str:
    """The single suggestion's text ('' for an empty list)."""
    if not result.items:
        return ""
    text = result.items[0].insert_text
    return text if isinstance(text, str) else text.value


def configure(client: LanguageClient, settings: dict[str, Any]) -> None:
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=settings))


class RawServer:
    """`codegeex-lsp serve` over pipes, framed by hand, so tests can send bytes no client would."""

    def __init__(self, model: str | Path) -> None:
        self.proc = subprocess.Popen(
            server_command(model),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def send_body(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_body(json.dumps(message).encode("utf-8"))

    def read(self) -> dict[str, Any]:
        """The next message from the server (blocking; the test's timeout bounds it)."""
        assert self.proc.stdout is not None
        length = None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError("server closed stdout")
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif line in (b"\r\n", b"\n") and length is not None:
                return json.loads(self.proc.stdout.read(length))

    def read_response(self, msg_id: int | str | None) -> dict[str, Any]:
        """The response with `msg_id`, skipping notifications (logMessage, showMessage)."""
        while True:
            message = self.read()
            if "method" not in message and message.get("id") == msg_id:
                return message

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(10)


class FramedServer:
    """`codegeex-lsp serve` over pipes with a reader thread, so every read has its own timeout.

    Replies are framed by a strict reader (exact `Content-Length: N\\r\\n`, an optional Content-Type,
    `\\r\\n`): the server must
    frame its own output correctly whatever it was sent. stderr goes to `stderr_path`.
    """

    def __init__(self, model: str | Path, stderr_path: Path, env: dict[str, str] | None = None) -> None:
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            server_command(model),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **(env or {})},
        )
        self.replies: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []  # what responses_until skipped
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()

    def _read_replies(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                header = stdout.readline()
                if not header:
                    raise EOFError("server closed stdout")
                name, _, value = header.partition(b": ")
                assert name == b"Content-Length" and header.endswith(b"\r\n"), header
                line = stdout.readline()
                if line.startswith(b"Content-Type: "):
                    line = stdout.readline()
                assert line == b"\r\n", line
                self.replies.put(json.loads(stdout.read(int(value))))
        except BaseException as exc:  # handed to the test thread
            self.replies.put(exc)

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        self.send_raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def read(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """The next reply; a hang is an AssertionError after `timeout_s`."""
        try:
            reply = self.replies.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no reply within {timeout_s} s: the server hangs") from None
        if isinstance(reply, BaseException):
            raise AssertionError(f"reading replies failed: {reply!r}")
        return reply

    def responses_until(self, msg_id: int | str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Every response (notifications skipped) up to and including the one with `msg_id`."""
        out = []
        while True:
            reply = self.read(timeout_s)
            if "method" in reply:
                self.notifications.append(reply)
                continue
            out.append(reply)
            if reply.get("id") == msg_id:
                return out

    def initialize(self, settings: dict[str, Any] | None = None, msg_id: int = 0) -> dict[str, Any]:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": msg_id,
                "method": "initialize",
                "params": {
                    "processId": None,
                    "rootUri": None,
                    "capabilities": {
                        "window": {"workDoneProgress": False},
                        "textDocument": {"inlineCompletion": {}},
                    },
                    "initializationOptions": settings or {},
                },
            }
        )
        (reply,) = self.responses_until(msg_id)
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return reply

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(10)
        self._stderr.close()
        return code
