"""Hostile LSP input through the real `codegeex-lsp serve` process over stdio.

Every hostile message (framing variants x bodies) is followed by a `codegeex/status` probe; the
responses up to the probe's must be exactly the errors (or results) the message deserves: one
ParseError per unframable message, the right code for the right id, nothing else. Anything more,
less or out of place is a desync; a missing reply within the read timeout is a hang; a dead
process is a crash. After the barrage a valid inline completion must equal the one given before.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.server.helpers import FAST_DEBOUNCE, FramedServer, server_command

pytestmark = pytest.mark.timeout(600)

# No completion cache: the answer after the barrage must come from the model again.
SETTINGS = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 8}, "cache": {"size": 0}}
BODY = "def add(a, b):\n    \n"
PARSE, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
RESULT = "result"

# -- bodies: (name, make(id) -> bytes, expected responses given that id) ---------------------------

Expected = list[tuple[Any, Any]]  # (id, error code or RESULT)


def _msg(**fields: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **fields}).encode()


def _inline(msg_id: int, **over: Any) -> bytes:
    params: dict[str, Any] = {
        "textDocument": {"uri": "file:///hostile/none.py"},
        "position": {"line": 0, "character": 0},
        "context": {"triggerKind": 1},
    }
    params.update(over)
    return _msg(id=msg_id, method="textDocument/inlineCompletion", params=params)


def _completion(msg_id: int, **over: Any) -> bytes:
    params: dict[str, Any] = {
        "textDocument": {"uri": "file:///hostile/none.py"},
        "position": {"line": 0, "character": 0},
    }
    params.update(over)
    return _msg(id=msg_id, method="textDocument/completion", params=params)


def _doc(uri: Any = "file:///hostile/d.py", **over: Any) -> dict[str, Any]:
    return {"uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n", **over}


def _change(text_document: Any, changes: Any) -> bytes:
    return _msg(
        method="textDocument/didChange",
        params={"textDocument": text_document, "contentChanges": changes},
    )


_RANGE = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}

# Wrongly typed params of requests: InvalidParams for that id, never a result nor -32603.
BAD_PARAMS: list[tuple[str, Callable[[int], bytes]]] = [
    ("inline line str", lambda i: _inline(i, position={"line": "1", "character": 0})),
    ("inline line float", lambda i: _inline(i, position={"line": 1.5, "character": 0})),
    ("inline line bool", lambda i: _inline(i, position={"line": True, "character": 0})),
    ("inline line null", lambda i: _inline(i, position={"line": None, "character": 0})),
    ("inline line negative", lambda i: _inline(i, position={"line": -1, "character": 0})),
    ("inline character str", lambda i: _inline(i, position={"line": 0, "character": "0"})),
    ("inline character list", lambda i: _inline(i, position={"line": 0, "character": [0]})),
    ("inline position list", lambda i: _inline(i, position=[0, 0])),
    ("inline position null", lambda i: _inline(i, position=None)),
    ("inline uri int", lambda i: _inline(i, textDocument={"uri": 5})),
    ("inline uri null", lambda i: _inline(i, textDocument={"uri": None})),
    ("inline textDocument str", lambda i: _inline(i, textDocument="file:///x.py")),
    ("inline context missing", lambda i: _inline(i, context=None)),
    ("inline triggerKind 9", lambda i: _inline(i, context={"triggerKind": 9})),
    ("inline triggerKind str", lambda i: _inline(i, context={"triggerKind": "1"})),
    ("inline params list", lambda i: _msg(id=i, method="textDocument/inlineCompletion", params=[1, 2])),
    ("inline params int", lambda i: _msg(id=i, method="textDocument/inlineCompletion", params=5)),
    ("inline params str", lambda i: _msg(id=i, method="textDocument/inlineCompletion", params="x")),
    ("inline params empty", lambda i: _msg(id=i, method="textDocument/inlineCompletion", params={})),
    ("inline no params", lambda i: _msg(id=i, method="textDocument/inlineCompletion")),
    ("completion line str", lambda i: _completion(i, position={"line": "0", "character": 0})),
    ("completion character float", lambda i: _completion(i, position={"line": 0, "character": 0.5})),
    ("completion uri list", lambda i: _completion(i, textDocument={"uri": ["a"]})),
    ("completion triggerKind bool", lambda i: _completion(i, context={"triggerKind": True})),
    ("completion params int", lambda i: _msg(id=i, method="textDocument/completion", params=7)),
    ("completion params list", lambda i: _msg(id=i, method="textDocument/completion", params=[])),
    ("status params int", lambda i: _msg(id=i, method="codegeex/status", params=5)),
    ("status params str", lambda i: _msg(id=i, method="codegeex/status", params="x")),
    ("status params list", lambda i: _msg(id=i, method="codegeex/status", params=[1])),
    ("status params bool", lambda i: _msg(id=i, method="codegeex/status", params=True)),
    ("shutdown params int", lambda i: _msg(id=i, method="shutdown", params=5)),
    ("shutdown params str", lambda i: _msg(id=i, method="shutdown", params="now")),
]

# Wrongly typed params of notifications: no answer possible; ignored, the server goes on.
BAD_NOTIFICATIONS: list[tuple[str, Callable[[int], bytes]]] = [
    ("didOpen textDocument int", lambda i: _msg(method="textDocument/didOpen", params={"textDocument": 42})),
    ("didOpen uri int", lambda i: _msg(method="textDocument/didOpen", params={"textDocument": _doc(uri=5)})),
    ("didOpen text list", lambda i: _msg(method="textDocument/didOpen", params={"textDocument": _doc(text=[])})),
    ("didOpen version str", lambda i: _msg(method="textDocument/didOpen", params={"textDocument": _doc(version="1")})),
    ("didOpen params list", lambda i: _msg(method="textDocument/didOpen", params=[1])),
    ("didChange version str", lambda i: _change({"uri": "file:///hostile/d.py", "version": "2"}, [{"text": ""}])),
    ("didChange changes dict", lambda i: _change({"uri": "file:///hostile/d.py", "version": 2}, {"text": ""})),
    ("didChange text int", lambda i: _change({"uri": "file:///hostile/d.py", "version": 2}, [{"text": 5}])),
    ("didChange range str", lambda i: _change({"uri": "file:///hostile/d.py", "version": 2},
                                              [{"range": "0:0", "text": "y"}])),
    ("didChange range line str", lambda i: _change(
        {"uri": "file:///hostile/d.py", "version": 2},
        [{"range": {**_RANGE, "start": {"line": "0", "character": 0}}, "text": "y"}])),
    ("didClose uri int", lambda i: _msg(method="textDocument/didClose", params={"textDocument": {"uri": 1}})),
    ("didClose params null", lambda i: _msg(method="textDocument/didClose", params=None)),
    ("accepted params int", lambda i: _msg(method="codegeex/accepted", params=5)),
    ("accepted uri list", lambda i: _msg(method="codegeex/accepted", params={"uri": []})),
    ("dismissed params str", lambda i: _msg(method="codegeex/dismissed", params="x")),
    ("configuration settings str", lambda i: _msg(method="workspace/didChangeConfiguration",
                                                   params={"settings": {"completion": {"maxTokens": "9"}}})),
    ("cancel id list", lambda i: _msg(method="$/cancelRequest", params={"id": [1]})),
]

BODIES: list[tuple[str, Callable[[int], bytes], Callable[[int], Expected]]] = [
    ("not json", lambda i: b"{not json", lambda i: [(None, PARSE)]),
    ("cut json", lambda i: b'{"jsonrpc": "2.0", "id": ', lambda i: [(None, PARSE)]),
    ("invalid utf-8", lambda i: b"\xff\xfe\x00garbage\x80", lambda i: [(None, PARSE)]),
    ("utf-8 BOM", lambda i: b"\xef\xbb\xbf" + _msg(id=i, method="codegeex/status"), lambda i: [(None, PARSE)]),
    ("100k-deep list", lambda i: b"[" * 100_000 + b"]" * 100_000, lambda i: [(None, PARSE)]),
    ("100k-deep params", lambda i: b'{"jsonrpc": "2.0", "id": %d, "method": "codegeex/status", "params": ' % i
     + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001, lambda i: [(None, PARSE)]),
    ("batch", lambda i: b"[1, 2, 3]", lambda i: [(None, INVALID_REQUEST)]),
    ("empty batch", lambda i: b"[]", lambda i: [(None, INVALID_REQUEST)]),
    ("null", lambda i: b"null", lambda i: [(None, INVALID_REQUEST)]),
    ("number", lambda i: b"12345", lambda i: [(None, INVALID_REQUEST)]),
    ("string", lambda i: b'"hello"', lambda i: [(None, INVALID_REQUEST)]),
    ("empty object", lambda i: b"{}", lambda i: [(None, INVALID_REQUEST)]),
    ("jsonrpc 1.0", lambda i: json.dumps({"jsonrpc": "1.0", "id": i, "method": "codegeex/status"}).encode(),
     lambda i: [(i, INVALID_REQUEST)]),
    ("jsonrpc missing", lambda i: json.dumps({"id": i, "method": "codegeex/status"}).encode(),
     lambda i: [(i, INVALID_REQUEST)]),
    ("jsonrpc number", lambda i: json.dumps({"jsonrpc": 2.0, "id": i, "method": "codegeex/status"}).encode(),
     lambda i: [(i, INVALID_REQUEST)]),
    ("method int", lambda i: _msg(id=i, method=5, params={}), lambda i: [(i, INVALID_REQUEST)]),
    ("method null", lambda i: _msg(id=i, method=None), lambda i: [(i, INVALID_REQUEST)]),
    ("method list", lambda i: _msg(id=i, method=["codegeex/status"]), lambda i: [(i, INVALID_REQUEST)]),
    ("method int notification", lambda i: _msg(method=5), lambda i: [(None, INVALID_REQUEST)]),
    ("id float", lambda i: _msg(id=i + 0.5, method="codegeex/status"), lambda i: [(None, INVALID_REQUEST)]),
    ("id bool", lambda i: _msg(id=True, method="codegeex/status"), lambda i: [(None, INVALID_REQUEST)]),
    ("id object", lambda i: _msg(id={"n": i}, method="codegeex/status"), lambda i: [(None, INVALID_REQUEST)]),
    ("id null", lambda i: _msg(id=None, method="codegeex/status"), lambda i: [(None, INVALID_REQUEST)]),
    ("no method no result", lambda i: _msg(id=i), lambda i: [(i, INVALID_REQUEST)]),
    ("didOpen with id", lambda i: _msg(id=i, method="textDocument/didOpen", params={"textDocument": _doc()}),
     lambda i: [(i, INVALID_REQUEST)]),
    ("exit with id", lambda i: _msg(id=i, method="exit"), lambda i: [(i, INVALID_REQUEST)]),
    ("initialized with id", lambda i: _msg(id=i, method="initialized", params={}),
     lambda i: [(i, INVALID_REQUEST)]),
    ("unknown method", lambda i: _msg(id=i, method="codegeex/nope", params={}),
     lambda i: [(i, METHOD_NOT_FOUND)]),
    ("unknown $ method", lambda i: _msg(id=f"s{i}", method="$/nope", params={}),
     lambda i: [(f"s{i}", METHOD_NOT_FOUND)]),
    ("inline unknown doc", lambda i: _inline(i), lambda i: [(i, RESULT)]),
    ("status null params", lambda i: _msg(id=f"q{i}", method="codegeex/status", params=None),
     lambda i: [(f"q{i}", RESULT)]),
    ("inline without id", lambda i: _msg(method="textDocument/inlineCompletion", params={}), lambda i: []),
    ("unknown response", lambda i: _msg(id=10_000_000 + i, result=None), lambda i: []),
    ("unknown error response", lambda i: _msg(id=20_000_000 + i, error={"code": 1, "message": "x"}),
     lambda i: []),
    ("unknown notification", lambda i: _msg(method="codegeex/nothing", params={}), lambda i: []),
    *[(name, make, lambda i: [(i, INVALID_PARAMS)]) for name, make in BAD_PARAMS],
    *[(name, make, lambda i: []) for name, make in BAD_NOTIFICATIONS],
]

# -- framings: (name, frame(body) -> bytes, what becomes of the body) ------------------------------
DELIVER, REJECT, TRUNCATE = "deliver", "reject", "truncate"


def _cl(value: bytes, end: bytes = b"\r\n") -> Callable[[bytes], bytes]:
    return lambda body: b"Content-Length: " + value.replace(b"N", b"%d" % len(body)) + end + end + body


FRAMINGS: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("standard", _cl(b"N"), DELIVER),
    ("lowercase name", lambda b: b"content-length: %d\r\n\r\n" % len(b) + b, DELIVER),
    ("uppercase, no space", lambda b: b"CONTENT-LENGTH:%d\r\n\r\n" % len(b) + b, DELIVER),
    ("LF only", _cl(b"N", b"\n"), DELIVER),
    ("padded value", lambda b: b"Content-Length: \t %d \t\r\n\r\n" % len(b) + b, DELIVER),
    ("content-type first", lambda b: b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
     b"Content-Length: %d\r\n\r\n" % len(b) + b, DELIVER),
    ("duplicated, same", lambda b: b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(b), len(b)) + b,
     DELIVER),
    ("junk header line", lambda b: b"X-Junk no colon here\r\n" + _cl(b"N")(b), DELIVER),
    ("blank lines first", lambda b: b"\r\n\n\r\n" + _cl(b"N")(b), DELIVER),
    ("binary junk first", lambda b: b"\x00\xff\x7fjunk" + _cl(b"N")(b), DELIVER),
    ("non-numeric", _cl(b"abc"), REJECT),
    ("negative", _cl(b"-N"), REJECT),
    ("zero", _cl(b"0"), REJECT),
    ("plus sign", _cl(b"+N"), REJECT),
    ("float", _cl(b"N.0"), REJECT),
    ("hex", lambda b: b"Content-Length: 0x%x\r\n\r\n" % len(b) + b, REJECT),
    ("empty value", _cl(b""), REJECT),
    ("missing", lambda b: b"Content-Type: application/vscode-jsonrpc\r\n\r\n" + b, REJECT),
    ("duplicated, different", lambda b: b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
     % (len(b), len(b) + 3) + b, REJECT),
    ("too short", lambda b: b"Content-Length: %d\r\n\r\n" % (len(b) - 1) + b, TRUNCATE),
    ("too long", lambda b: b"Content-Length: %d\r\n\r\n" % (len(b) + 25) + b, REJECT),
    ("2^32", _cl(b"4294967296"), REJECT),
    ("2^35", _cl(b"34359738368"), REJECT),
    ("100 digits", _cl(b"9" * 100), REJECT),
]


def _expected(mode: str, body_expected: Expected) -> Expected:
    if mode == DELIVER:
        return body_expected
    return [(None, PARSE)]


def _outcome(response: dict[str, Any]) -> tuple[Any, Any]:
    if "error" in response:
        assert set(response) == {"jsonrpc", "id", "error"}, response
        assert "Traceback" not in response["error"]["message"], response
        return response["id"], response["error"]["code"]
    assert set(response) == {"jsonrpc", "id", "result"}, response
    return response["id"], RESULT


def _probe(server: FramedServer, probe_id: str, wanted: Expected) -> list[tuple[Any, Any]]:
    """Send the probe; the outcomes of every response up to it and of the `wanted` ids after it."""
    server.send({"jsonrpc": "2.0", "id": probe_id, "method": "codegeex/status", "params": {}})
    responses = server.responses_until(probe_id)
    probe = responses.pop()
    assert probe["result"]["state"] in ("loading", "ready", "idle"), probe
    outcomes = [_outcome(r) for r in responses]
    late = Counter(i for i, _ in wanted if i is not None) - Counter(i for i, _ in outcomes if i is not None)
    while late:  # results of handlers that run as tasks may come after the probe's
        got = [_outcome(r) for r in server.responses_until(next(iter(late)))]
        outcomes += got
        late -= Counter(i for i, _ in got if i is not None)
    return outcomes


def _inline_text(server: FramedServer, uri: str, msg_id: str) -> str:
    server.send({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/inlineCompletion", "params": {
        "textDocument": {"uri": uri}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 1}}})
    (response,) = [r for r in server.responses_until(msg_id) if r["id"] == msg_id]
    items = response["result"]["items"]
    return items[0]["insertText"] if items else ""


def _open(server: FramedServer, uri: str, text: str) -> None:
    server.send({"jsonrpc": "2.0", "method": "textDocument/didOpen",
                 "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}})


def _wait_ready(server: FramedServer) -> None:
    for n in range(3000):
        server.send({"jsonrpc": "2.0", "id": f"ready{n}", "method": "codegeex/status", "params": {}})
        state = server.responses_until(f"ready{n}")[-1]["result"]["state"]
        if state == "ready":
            return
        assert state in ("loading", "idle"), state
        time.sleep(0.1)
    raise AssertionError("model never ready")


def test_hostile_messages_neither_crash_hang_nor_desync(tiny_glm_dir, tmp_path):
    server = FramedServer(tiny_glm_dir, tmp_path / "stderr.log")
    try:
        server.initialize(SETTINGS)
        _wait_ready(server)
        _open(server, "file:///hostile/before.py", BODY)
        before = _inline_text(server, "file:///hostile/before.py", "before")
        assert before, "the tiny model answers something in an empty function body"

        sent = 0
        failures = []
        for framing, frame, mode in FRAMINGS:
            for name, make, expect in BODIES:
                sent += 1
                msg_id = 1000 + sent
                wanted = _expected(mode, expect(msg_id))
                server.send_raw(frame(make(msg_id)))
                outcomes = _probe(server, f"probe{sent}", wanted)
                assert server.proc.poll() is None, f"crashed on {framing} / {name}"
                ok = (
                    len(outcomes) == 1 and outcomes[0][0] is None and outcomes[0][1] in (PARSE, INVALID_REQUEST)
                    if mode == TRUNCATE
                    else Counter(outcomes) == Counter(wanted)
                )
                if not ok:
                    failures.append(f"{framing} / {name}: got {outcomes}, wanted {wanted}")
        assert sent >= 500
        assert not failures, f"{len(failures)} of {sent} desynced:\n" + "\n".join(failures[:40])

        assert _inline_text(server, "file:///hostile/before.py", "after") == before
        assert server.proc.poll() is None
        log = server.stderr_path.read_text(errors="replace")
        assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
    finally:
        server.close()


def test_over_cap_body_is_skipped_and_requests_after_shutdown_are_invalid(tiny_glm_dir, tmp_path):
    server = FramedServer(tiny_glm_dir, tmp_path / "stderr.log", env={"CODEGEEX_LSP_MAX_MESSAGE_BYTES": "65536"})
    try:
        server.initialize(SETTINGS)
        _open(server, "file:///hostile/big.py", "x = 1\n" * 50_000)  # 300 KB: over the 64 KiB cap
        assert _probe(server, "p1", []) == [(None, PARSE)]
        server.send({"jsonrpc": "2.0", "id": "st", "method": "codegeex/status"})
        reply = server.responses_until("st")[-1]
        assert reply["result"]["openDocuments"] == 0, reply

        server.send({"jsonrpc": "2.0", "id": "bye", "method": "shutdown"})
        assert server.responses_until("bye") == [{"jsonrpc": "2.0", "id": "bye", "result": None}]
        for n, method in enumerate(("codegeex/status", "textDocument/inlineCompletion", "shutdown", "initialize")):
            server.send({"jsonrpc": "2.0", "id": n, "method": method, "params": {}})
            (response,) = server.responses_until(n)
            assert response["error"]["code"] == INVALID_REQUEST, response
        server.send({"jsonrpc": "2.0", "method": "exit"})
        assert server.proc.wait(30) == 0
    finally:
        server.close()


def test_tcp_transport_uses_the_same_framing(tiny_glm_dir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([*server_command(tiny_glm_dir), "--tcp", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("the TCP server never listened")
        with conn:
            body = _msg(id=1, method="initialize", params={"processId": None, "rootUri": None, "capabilities": {}})
            conn.sendall(b"Content-Length: abc\r\n\r\n{junk}" + b"content-length: %d\n\n" % len(body) + body)
            replies = conn.makefile("rb")
            got = []
            while len(got) < 2:
                length = None
                while (line := replies.readline()) not in (b"\r\n", b""):
                    if line.startswith(b"Content-Length: "):
                        length = int(line.split(b": ")[1])
                assert length is not None, "connection closed"
                message = json.loads(replies.read(length))
                if "method" not in message:
                    got.append(message)
            assert got[0]["id"] is None and got[0]["error"]["code"] == PARSE
            assert got[1]["id"] == 1 and "capabilities" in got[1]["result"]
    finally:
        proc.kill()
        proc.wait(10)
