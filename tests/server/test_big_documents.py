"""Document size cap through the real server: a clear showMessage, no completions in the big
document, its text not kept, other documents unaffected; and a cursor line far over the budget
(the prompt stays within the token budgets)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.server.helpers import FAST_DEBOUNCE, FramedServer

pytestmark = pytest.mark.timeout(300)

MAX_BYTES = 100_000
SETTINGS = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 8}, "documents": {"maxBytes": MAX_BYTES}}
BODY = "def add(a, b):\n    \n"


def _open(server: FramedServer, uri: str, text: str, version: int = 1) -> None:
    server.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
        "textDocument": {"uri": uri, "languageId": "python", "version": version, "text": text}}})


def _change(server: FramedServer, uri: str, version: int, change: dict[str, Any]) -> None:
    server.send({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": version}, "contentChanges": [change]}})


def _request(server: FramedServer, msg_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    server.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    reply = server.responses_until(msg_id)[-1]
    assert "result" in reply, reply
    return reply["result"]


def _inline(server: FramedServer, msg_id: str, uri: str, line: int, character: int) -> list[dict[str, Any]]:
    return _request(server, msg_id, "textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": {"line": line, "character": character},
        "context": {"triggerKind": 1}})["items"]


def _warnings(server: FramedServer) -> list[str]:
    return [n["params"]["message"] for n in server.notifications
            if n["method"] == "window/showMessage" and n["params"]["type"] == 2]


def _wait_status(server: FramedServer, key: str, value: Any) -> None:
    """Poll codegeex/status (documents are opened and edited off the event loop)."""
    for n in range(3000):
        current = _request(server, f"wait-{key}-{value}-{n}", "codegeex/status", {})[key]
        if current == value:
            return
        time.sleep(0.05)
    raise AssertionError(f"status {key} stuck at {current!r}, wanted {value!r}")


def test_document_size_cap(tiny_glm_dir, tmp_path):
    server = FramedServer(tiny_glm_dir, tmp_path / "stderr.log")
    try:
        server.initialize(SETTINGS)
        _wait_status(server, "state", "ready")
        big = "x = 1\n" * (MAX_BYTES // 6 + 100) + BODY
        _open(server, "file:///big.py", big)
        _open(server, "file:///small.py", BODY)
        _wait_status(server, "openDocuments", 1)
        (warning,) = _warnings(server)
        assert "file:///big.py" in warning and "documents.maxBytes" in warning, warning

        n_lines = big.count("\n")
        assert _inline(server, "i1", "file:///big.py", n_lines - 1, 4) == []
        assert _inline(server, "i2", "file:///small.py", 1, 4), "other documents are unaffected"

        # An incremental edit to the big one is ignored; a full text that fits brings it back.
        at = {"line": 0, "character": 0}
        _change(server, "file:///big.py", 2, {"range": {"start": at, "end": at}, "text": "y"})
        _change(server, "file:///big.py", 3, {"text": BODY})
        _wait_status(server, "openDocuments", 2)
        assert _inline(server, "i3", "file:///big.py", 1, 4)

        # Growing past the cap by edits drops it again, with a message.
        _change(server, "file:///small.py", 2, {"range": {"start": at, "end": at}, "text": big})
        _wait_status(server, "openDocuments", 1)
        assert len(_warnings(server)) == 2 and "file:///small.py" in _warnings(server)[1]
        assert _inline(server, "i4", "file:///small.py", 1, 4) == []

        # A 1.5 MB cursor line (under a raised cap) is budgeted like the rest of the prompt.
        server.send({"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration",
                     "params": {"settings": {**SETTINGS, "documents": {"maxBytes": 3_000_000}}}})
        line = "data = [" + "1, " * 500_000
        _open(server, "file:///minified.py", "import os\n" + line + "\nprint(data)\n")
        _wait_status(server, "openDocuments", 2)
        _inline(server, "i5", "file:///minified.py", 1, len(line))  # a reply within the read timeout
        decodes = _request(server, "s4", "codegeex/status", {})["recentDecodes"]
        (decode,) = [d for d in decodes if d["requestId"].endswith("#i5")]
        assert 0 < decode["promptTokens"] <= 1024 + 256 + 64, decode  # not 1.5 million
        assert server.proc.poll() is None
    finally:
        server.close()
