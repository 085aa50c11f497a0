"""The shared LSP client (`codegeex_lsp.lsp_client`) against a real `codegeex-lsp serve` process."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from codegeex_lsp.errors import CodegeexError
from codegeex_lsp.lsp_client import SyncLspClient


def _serve(model: str) -> list[str]:
    return [sys.executable, "-m", "codegeex_lsp.cli", "serve", "--model", model, "--threads", "1"]


@pytest.mark.timeout(120)
def test_sync_client_talks_json_to_a_real_server(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    client = SyncLspClient(_serve(str(tmp_path / "no-such-model")), log)
    try:
        result = client.initialize({}, timeout_s=60)
        assert result.capabilities.inline_completion_provider is not None
        assert result.capabilities.position_encoding == "utf-16"
        deadline = time.monotonic() + 60
        while (status := client.call("codegeex/status", {}, 30))["state"] == "loading":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["state"] == "error" and "no-such-model" in status["error"]
        # JSON params of a standard method go out typed; the answer comes back as JSON.
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": "file:///t/a.py", "languageId": "python", "version": 1, "text": "x = "}},
        )
        answer = client.call(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": "file:///t/a.py"},
                "position": {"line": 0, "character": 4},
                "context": {"triggerKind": 1},
            },
            30,
        )
        assert answer == {"items": []}  # no model: an empty answer, the server keeps serving
        with pytest.raises(CodegeexError, match="codegeex/nothing failed"):
            client.call("codegeex/nothing", {}, 30)
        assert client.call("codegeex/status", {}, 30)["openDocuments"] == 1
    finally:
        client.close()
    assert client.client.returncode == 0
    assert log.read_text()  # the server's stderr was drained into the log


@pytest.mark.timeout(60)
def test_a_server_that_exits_is_an_error_naming_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    client = SyncLspClient([sys.executable, "-c", "import sys; print('gone', file=sys.stderr)"], log)
    try:
        with pytest.raises(CodegeexError, match="exited with code 0"):
            client.initialize({}, timeout_s=30)
    finally:
        client.close()
