"""The shared LSP client (`codegeex_lsp.lsp_client`) against a real `codegeex-lsp serve` process."""

from __future__ import annotations

import json
import re
import subprocess
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


RECORDER = Path(__file__).resolve().parents[1] / "docs" / "transcripts" / "record_lsp_session.py"


@pytest.mark.timeout(300)
def test_the_transcript_recorder_logs_every_message_through_the_shared_client(tiny_glm_dir, tmp_path: Path) -> None:
    """docs/transcripts/record_lsp_session.py on the shared pygls client: same Markdown format."""
    out = tmp_path / "session.md"
    done = subprocess.run(
        [sys.executable, str(RECORDER), "--model", str(tiny_glm_dir), "--quant", "none", "--threads", "1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# codegeex-lsp: a recorded LSP session\n")
    assert "\nServer exit code: 0.\n" in text
    records = re.findall(r"^### +(\d+) ms · (client → server|server → client) · `([^`]+)`\n\n```json\n(.*?)\n```$",
                         text, flags=re.M | re.S)
    assert len(records) == text.count("\n### ")
    stamps = [int(stamp) for stamp, _, _, _ in records]
    assert stamps == sorted(stamps)
    messages = [(direction, title, json.loads(body)) for _, direction, title, body in records]
    assert all(message["jsonrpc"] == "2.0" for _, _, message in messages)
    sent = [title for direction, title, _ in messages if direction == "client → server"]
    received = [title for direction, title, _ in messages if direction == "server → client"]
    assert sent[:2] == ["initialize", "initialized"] and sent[-2:] == ["shutdown", "exit"]
    for method in ("textDocument/didOpen", "textDocument/inlineCompletion", "textDocument/completion",
                   "$/cancelRequest", "codegeex/status", "codegeex/accepted", "codegeex/dismissed"):
        assert method in sent, method
    assert "$/progress" in received and "window/logMessage" in received
    # Every request the client sent has its response logged, and the other way round.
    for direction, answer in (("client → server", "server → client"), ("server → client", "client → server")):
        asked = {m["id"] for d, _, m in messages if d == direction and "method" in m and "id" in m}
        answered = {m["id"] for d, _, m in messages if d == answer and "method" not in m}
        assert asked and asked <= answered, (direction, asked - answered)
    initialize = next(m for _, title, m in messages if title == "initialize")
    assert initialize["params"]["capabilities"]["textDocument"]["completion"] == {}
    assert initialize["params"]["initializationOptions"] == {"debounce": {"minMs": 0, "maxMs": 0, "initialMs": 0}}
