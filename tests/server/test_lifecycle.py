"""Per-process behaviour: a model that fails to load, a UTF-8 client without inline completion,
shutdown/exit, and bytes no well-behaved client sends (malformed JSON, invalid params)."""

from __future__ import annotations

import json
import time

import pytest
from lsprotocol import types as lsp

from tests.server.helpers import (
    FAST_DEBOUNCE,
    RawServer,
    capabilities,
    configure,
    inline,
    insert,
    open_doc,
    start_client,
    status,
    stop_client,
    suggestion,
    wait_state,
)

pytestmark = pytest.mark.timeout(300)

SETTINGS = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 8}}
BODY = "def add(a, b):\n    \n"


async def test_model_load_failure_then_fixed_by_configuration(tiny_glm_dir, tmp_path):
    missing = tmp_path / "no-such-model"
    client, _ = await start_client(missing, init_options=SETTINGS)
    try:
        current = await wait_state(client, ("error",))
        assert "not found" in current["error"] and str(missing) in current["error"]
        errors = [m for m in client.messages if m.type == lsp.MessageType.Error]
        assert errors and "no-such-model" in errors[0].message
        (reports,) = client.progress_reports.values()
        assert [r.kind for r in (reports[0], reports[-1])] == ["begin", "end"]

        uri = "file:///home/user/project/failed.py"
        open_doc(client, uri, BODY)
        assert suggestion(await inline(client, uri, 1, 4, invoked=True)) == ""
        assert (await status(client))["counters"]["empty"] == 1

        configure(client, {**SETTINGS, "model": {"name": str(tiny_glm_dir)}})
        current = await wait_state(client, ("ready",))
        assert current["error"] is None and current["model"] == str(tiny_glm_dir)
        assert suggestion(await inline(client, uri, 1, 4))
    finally:
        await stop_client(client)


async def test_utf8_client_without_inline_completion(tiny_glm_dir):
    caps = capabilities(inline=False, encodings=["utf-8", "utf-16"])
    client, result = await start_client(tiny_glm_dir, caps=caps, init_options=SETTINGS)
    try:
        assert result.capabilities.position_encoding == lsp.PositionEncodingKind.Utf8
        assert result.capabilities.completion_provider is not None
        await wait_state(client)
        uri = "file:///home/user/project/utf8.py"
        # UTF-8 columns: 😀 is 4 bytes (5..9), 你 and 好 3 each.
        open_doc(client, uri, "s = '😀你好'\nvalue_one\n")
        insert(client, uri, 2, 0, 9, "X")
        completion = await client.text_document_completion_async(
            lsp.CompletionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                position=lsp.Position(line=0, character=10),
                context=lsp.CompletionContext(trigger_kind=lsp.CompletionTriggerKind.Invoked),
            )
        )
        edit = completion.items[0].text_edit
        assert edit.range.start == lsp.Position(line=0, character=9)
        assert edit.new_text.startswith("X") and not edit.new_text.startswith("X你")
        # A column inside the emoji's bytes snaps back to its first byte.
        inside = await inline(client, uri, 0, 7, invoked=True)
        assert inside.items[0].range.start == lsp.Position(line=0, character=5)
        assert (await status(client))["positionEncoding"] == "utf-8"
    finally:
        await stop_client(client)
    assert client._server.returncode == 0  # shutdown + exit: a clean exit


def test_malformed_messages_get_errors_and_the_server_goes_on(tiny_glm_dir):
    server = RawServer(tiny_glm_dir)
    try:
        server.send({"jsonrpc": "2.0", "id": 1, "method": "codegeex/status", "params": {}})
        assert server.read_response(1)["error"]["code"] == -32002  # not initialized yet

        # No `initialized`: the model is never loaded, this test is about the JSON-RPC layer.
        server.send(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "initialize",
                "params": {"processId": None, "rootUri": None, "capabilities": {}},
            }
        )
        assert "capabilities" in server.read_response(2)["result"]

        server.send_raw(b"this is not a header\r\n")
        server.send_body(b'{"jsonrpc": "2.0", "id": 3, "method": ')
        assert server.read_response(None)["error"]["code"] == -32700
        server.send_body(b'\xff\xfe{"jsonrpc": "2.0"}')
        assert server.read_response(None)["error"]["code"] == -32700
        server.send_body(b"[1, 2, 3]")
        assert server.read_response(None)["error"]["code"] == -32600
        server.send({"jsonrpc": "1.0", "id": 4, "method": "codegeex/status"})
        assert server.read_response(4)["error"]["code"] == -32600
        server.send(
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "textDocument/inlineCompletion",
                "params": {
                    "textDocument": {"uri": "file:///x.py"},
                    "position": {"line": -1, "character": 0},
                    "context": {"triggerKind": 1},
                },
            }
        )
        assert server.read_response(5)["error"]["code"] == -32602
        server.send({"jsonrpc": "2.0", "id": 6, "method": "textDocument/inlineCompletion", "params": {}})
        assert server.read_response(6)["error"]["code"] == -32602
        server.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": 42}})
        server.send_body(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "textDocument/didOpen",
                    "params": {
                        "textDocument": {
                            "uri": "file:///j.py",
                            "languageId": "python",
                            "version": 1,
                            "text": "\ud800\x00\udfff",
                        }
                    },
                }
            ).encode()
        )

        for msg_id in range(100, 200):  # didOpen is applied off the event loop: poll
            server.send({"jsonrpc": "2.0", "id": msg_id, "method": "codegeex/status", "params": {}})
            answer = server.read_response(msg_id)["result"]
            if answer["openDocuments"] == 1:
                break
            time.sleep(0.05)
        assert answer["state"] == "idle" and answer["openDocuments"] == 1

        server.send({"jsonrpc": "2.0", "id": 8, "method": "shutdown"})
        assert server.read_response(8)["result"] is None
        server.send({"jsonrpc": "2.0", "method": "exit"})
        assert server.proc.wait(30) == 0
    finally:
        server.close()
