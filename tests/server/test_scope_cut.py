"""A BLOCK suggestion is cut at the end of its enclosing scope, through the real `serve` process.

The model is an OpenAI-compatible HTTP server in this test process (`serve --backend openai`, a
real socket and server-sent events) that streams a fixed text running past the scope: after the
member the cursor asks for, another member and the rest of the file. In each of the 8 grammars the
editor must get the first member only. Where the scope decides the cut (a class body entered at
column 0, whose members the model writes at column 0), the same text post-processed without the
scope keeps the second member: that is checked too, so these tests fail if the scope is dropped
on the way to post-processing.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codegeex_lsp.context import Document, build_context, to_fim_request
from codegeex_lsp.postprocess import finish_candidates
from tests.server.helpers import (
    FAST_DEBOUNCE,
    inline,
    open_doc,
    start_client,
    stop_client,
    suggestion,
    wait_state,
)

pytestmark = pytest.mark.timeout(300)


@dataclasses.dataclass(frozen=True)
class Case:
    language: str
    document: str  # █ marks the cursor
    model_text: str  # what the stub model streams
    expected: str  # what the editor gets
    scope_decides: bool = True


CASES = (
    Case(
        "python",
        "class CalcPy:\n█\n",
        "def sub(self, a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n\nprint(mul(2, 3))\n",
        "def sub(self, a, b):\n    return a - b",
    ),
    Case(
        "java",
        "class CalcJava {\n█\n}\n",
        "int sub(int a, int b) {\n    return a - b;\n}\n\nint mul(int a, int b) {\n    return a * b;\n}\n}\n",
        "int sub(int a, int b) {\n    return a - b;\n}",
    ),
    Case(
        "javascript",
        "class CalcJs {\n█\n}\n",
        "sub(a, b) {\n  return a - b;\n}\n\nmul(a, b) {\n  return a * b;\n}\n}\n\nconsole.log(new CalcJs());\n",
        "sub(a, b) {\n  return a - b;\n}",
    ),
    Case(
        "typescript",
        "class CalcTs {\n█\n}\n",
        "sub(a: number, b: number): number {\n  return a - b;\n}\n\n"
        "mul(a: number, b: number): number {\n  return a * b;\n}\n}\n",
        "sub(a: number, b: number): number {\n  return a - b;\n}",
    ),
    Case(
        "cpp",
        "class CalcCpp {\n█\n};\n",
        "int sub(int a, int b) {\n    return a - b;\n}\n\nint mul(int a, int b) {\n    return a * b;\n}\n};\n",
        "int sub(int a, int b) {\n    return a - b;\n}",
    ),
    Case(
        "rust",
        "impl CalcRs {\n█\n}\n",
        "fn sub(&self, a: i32, b: i32) -> i32 {\n    a - b\n}\n\n"
        "fn mul(&self, a: i32, b: i32) -> i32 {\n    a * b\n}\n}\n",
        "fn sub(&self, a: i32, b: i32) -> i32 {\n    a - b\n}",
    ),
    # A function body in a brace language: the closing brace of the function ends the block (the
    # bracket rule), with or without the scope.
    Case(
        "go",
        "func sumGo(values []int) int {\n█\n}\n",
        "\ttotal := 0\n\tfor _, v := range values {\n\t\ttotal += v\n\t}\n\treturn total\n}\n\n"
        "func main() {\n\tfmt.Println(sumGo(nil))\n}\n",
        "\ttotal := 0\n\tfor _, v := range values {\n\t\ttotal += v\n\t}\n\treturn total",
        scope_decides=False,
    ),
    Case(
        "c",
        "int sum_c(int *values, int n) {\n█\n}\n",
        "    int total = 0;\n    for (int i = 0; i < n; i++) {\n        total += values[i];\n    }\n"
        "    return total;\n}\n\nint main(void) {\n    return sum_c(0, 0);\n}\n",
        "    int total = 0;\n    for (int i = 0; i < n; i++) {\n        total += values[i];\n    }\n"
        "    return total;",
        scope_decides=False,
    ),
)
EXTENSIONS = {"python": "py", "java": "java", "javascript": "js", "typescript": "ts", "cpp": "cpp",
              "rust": "rs", "go": "go", "c": "c"}  # fmt: skip


def split(case: Case) -> tuple[str, int]:
    return case.document.replace("█", ""), case.document.index("█")


def uri_of(case: Case) -> str:
    return f"file:///home/user/project/scope/calc.{EXTENSIONS[case.language]}"


def chunks(text: str) -> Iterator[str]:
    """The text in a few pieces per line, as a model streams it."""
    for line in text.splitlines(keepends=True):
        middle = len(line) // 2
        yield from (part for part in (line[:middle], line[middle:]) if part)


class StubModel(BaseHTTPRequestHandler):
    """`/v1/models` and a streaming `/v1/completions` that answers each document's fixed text,
    found by the document's prefix in the request (the server sends it as `prompt`)."""

    texts: dict[str, str] = {}  # noqa: RUF012 (set once per server, below)
    requests: list[dict] = []  # noqa: RUF012

    def log_message(self, *_args) -> None:  # keep the test output clean
        pass

    def _send_json(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send_json({"object": "list", "data": [{"id": "stub", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        text = next((t for prefix, t in self.texts.items() if body["prompt"].endswith(prefix)), "")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for piece in chunks(text):
                event = {"model": "stub", "choices": [{"index": 0, "text": piece, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            done = {"model": "stub", "choices": [{"index": 0, "text": "", "finish_reason": "length"}]}
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed the stream: it stopped early


@pytest.fixture(scope="module")
def stub_model():
    StubModel.texts = {split(case)[0][: split(case)[1]]: case.model_text for case in CASES}
    StubModel.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("case", CASES, ids=[c.language for c in CASES])
def test_the_cursor_asks_for_a_block_in_a_scope(case: Case):
    """The premise: each document asks for BLOCK inside a scope, and where the scope decides the
    cut, post-processing without it keeps the second member."""
    text, offset = split(case)
    doc = Document(uri_of(case), text, case.language)
    ctx = build_context(doc, doc.position_at(offset))
    assert ctx.mode == "BLOCK" and ctx.scope is not None, (ctx.mode, ctx.reason)
    request = to_fim_request(ctx)
    assert request.scope == ctx.scope
    assert finish_candidates([case.model_text], request) == (case.expected,)
    unscoped = finish_candidates([case.model_text], dataclasses.replace(request, scope=None))
    assert (unscoped != (case.expected,)) == case.scope_decides, unscoped


async def test_block_suggestions_end_at_the_scope_through_serve(stub_model):
    settings = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 128}}
    extra = ("--backend", "openai", "--base-url", stub_model, "--fim", "suffix", "--retries", "0")
    client, _ = await start_client("stub", init_options=settings, extra=extra)
    try:
        ready = await wait_state(client)
        assert ready["backend"]["kind"] == "openai"
        for case in CASES:
            text, offset = split(case)
            open_doc(client, uri_of(case), text, case.language)
            line = text.count("\n", 0, offset)
            got = suggestion(await inline(client, uri_of(case), line, 0, invoked=True))
            assert got == case.expected, case.language
    finally:
        await stop_client(client)
    # Every request reached the model, with the document's text around the cursor.
    assert len(StubModel.requests) == len(CASES)
    assert all(r["stream"] and r["suffix"].startswith("\n") for r in StubModel.requests)


ABOVE_CODE = Case(
    "python",
    "def f(x):\n    y = 1\n█    return y\n",
    "    y += x\n    return y\n",  # the model writes the new line, then repeats the cursor's line
    "    y += x\n",
)


async def test_an_invoked_request_at_the_start_of_a_code_line_puts_its_lines_above_it(stub_model):
    """Column 0 of `    return y`: an automatic trigger gets nothing there; an invoked one gets
    whole lines that end in a break, so accepting them keeps `return y` on a line of its own (as a
    single LINE it was `    y += x    return y`)."""
    text, offset = split(ABOVE_CODE)
    StubModel.texts[text[:offset]] = ABOVE_CODE.model_text
    settings = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 128}}
    extra = ("--backend", "openai", "--base-url", stub_model, "--fim", "suffix", "--retries", "0")
    client, _ = await start_client("stub", init_options=settings, extra=extra)
    uri = "file:///home/user/project/scope/above.py"
    try:
        await wait_state(client)
        open_doc(client, uri, text, "python")
        assert suggestion(await inline(client, uri, 2, 0)) == ""  # automatic: NONE before code
        got = suggestion(await inline(client, uri, 2, 0, invoked=True))
    finally:
        await stop_client(client)
    assert got == ABOVE_CODE.expected
    accepted = text[:offset] + got + text[offset:]
    assert accepted == "def f(x):\n    y = 1\n    y += x\n    return y\n"
