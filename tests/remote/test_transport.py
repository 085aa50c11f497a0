"""The remote backend's httpx transport against an OpenAI-compatible HTTP server in this process
(real sockets, server-sent events): streaming, cancel by closing the stream (also before the
response headers), retries with exponential backoff and Retry-After, no retry on 4xx, a clear
error when the server is down, HTTPS with a private CA and proxies (forward with credentials,
CONNECT), through the socket relays of `relays.py`. Runs without llama.cpp; test_openai.py and
test_network.py repeat the essentials against the real llama.cpp server."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.complete import complete_planned
from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.errors import RemoteError
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.remote.openai import OpenAIClient, OpenAIOptions
from tests.remote.conftest import free_port
from tests.remote.relays import Listener, Proxy, make_certs, relay

pytestmark = pytest.mark.timeout(120)

ADD = FimRequest(prefix="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n", language="python")
PIECES = ["a", " +", " b", "\n", "\n", "print", "(1)"]
WAIT_S = 30.0  # how long the stub holds a response open: far longer than any cut takes


class Stub(BaseHTTPRequestHandler):
    """`behaviour` decides each POST: "stream" (PIECES, then [DONE]), "endless" (a piece every 20 ms
    until the client goes away or WAIT_S), "hold" (no headers until `release` or WAIT_S),
    or an HTTP status (error body, `Retry-After: 0`)."""

    protocol_version = "HTTP/1.1"
    behaviour: str | int = "stream"
    bodies: list[dict] = []  # noqa: RUF012 (reset per test)
    headers_sent = threading.Event()
    client_gone = threading.Event()
    release = threading.Event()
    on_post: Callable[[], None] | None = None  # called once a POST's body is read

    def log_message(self, *_args) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"data": [{"id": "stub-model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        cls = type(self)
        cls.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        if cls.on_post is not None:
            cls.on_post()
        if isinstance(cls.behaviour, int):
            body = json.dumps({"error": {"message": f"stub says {cls.behaviour}"}}).encode()
            self.send_response(cls.behaviour)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if cls.behaviour == "hold":
            cls.release.wait(WAIT_S)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        cls.headers_sent.set()
        pieces = PIECES if cls.behaviour == "stream" else ["x"] * int(WAIT_S / 0.02)
        try:
            for piece in pieces:
                event = {
                    "model": "stub-model",
                    "choices": [{"index": 0, "text": piece, "finish_reason": None}],
                }
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                if cls.behaviour == "endless":
                    time.sleep(0.02)
            self.wfile.write(
                b'data: {"choices": [{"text": "", "finish_reason": "length"}]}\n\ndata: [DONE]\n\n'
            )
            self.wfile.flush()
        except OSError:
            cls.client_gone.set()


@pytest.fixture
def stub():
    Stub.behaviour = "stream"
    Stub.bodies = []
    Stub.on_post = None
    for event in (Stub.headers_sent, Stub.client_gone, Stub.release):
        event.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    Stub.release.set()
    server.shutdown()
    server.server_close()


def base_url(server: ThreadingHTTPServer, scheme: str = "http", port: int | None = None) -> str:
    return f"{scheme}://127.0.0.1:{port or server.server_address[1]}/v1"


def client_for(url: str, **options) -> OpenAIClient:
    return OpenAIClient(OpenAIOptions(base_url=url, **{"fim": "suffix", "retries": 0, **options}))


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def https_front(stub, certs):
    """TLS on 127.0.0.1:<port>, relayed to the stub's plain HTTP."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")

    def handle(conn: socket.socket) -> None:
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
        relay(tls, socket.create_connection(("127.0.0.1", stub.server_address[1])))

    front = Listener(handle)
    yield front
    front.close()


@pytest.fixture
def proxy():
    made = Proxy()
    yield made
    made.close()


def test_streams_and_stops_where_the_spec_says(stub):
    client = client_for(base_url(stub))
    client.probe()
    assert client.model_name == "stub-model"  # the one model it serves
    seen: list[str] = []
    line = client.generate(
        ADD, CompletionOptions(max_tokens=8), on_token=lambda _i, _t, text: seen.append(text)
    )
    # LINE mode: the text ends at the first newline after text; the stream is closed there.
    assert line.raw == ("a + b",) and line.finish_reason == "stop"
    assert seen[:3] == ["a", "a +", "a + b"]
    body = Stub.bodies[-1]
    assert body["stream"] is True and body["max_tokens"] == 8 and "```" in body["stop"]
    assert body["prompt"] == "def add(a, b):\n    return" and body["suffix"].startswith("\n\nprint")
    done = complete_planned(ADD, CompletionOptions(max_tokens=8), client)
    assert done.completion == "a + b"  # healed: the prompt ended before "return "'s space


def _helper_threads() -> set[threading.Thread]:
    """Threads of this process but the stub's handlers (one per connection)."""
    return {t for t in threading.enumerate() if "process_request_thread" not in t.name}


def test_cancel_closes_the_stream(stub):
    Stub.behaviour = "endless"
    client = client_for(base_url(stub))
    cancel = Cancellation()
    before = _helper_threads()
    seen: list[tuple[int, set[threading.Thread]]] = []

    def on_token(_index, _token, _text):
        seen.append((cancel.n_callbacks, _helper_threads() - before))
        if len(seen) == 3:
            cancel.cancel()  # its callback shuts the stream's socket down before this returns

    block = FimRequest(prefix="x = [\n", suffix="", language="python", mode="BLOCK")
    result = client.generate(block, CompletionOptions(max_tokens=400), cancel=cancel, on_token=on_token)
    assert result.finish_reason == "cancelled"
    assert Stub.client_gone.wait(WAIT_S)  # the server saw the stream closed before it was done
    # While streaming, the request's cut was registered with the cancellation and no thread of
    # ours watched a flag; afterwards the callback is unregistered.
    assert seen[0] == (1, set())
    assert cancel.n_callbacks == 0
    assert len(seen) < int(WAIT_S / 0.02)  # the stream ended early, not at the stub's last piece


def test_cancel_while_waiting_for_the_response_headers(stub):
    Stub.behaviour = "hold"
    client = client_for(base_url(stub))
    cancel = Cancellation()
    Stub.on_post = cancel.cancel  # from the stub's thread, while the client waits for headers
    result = client.generate(ADD, CompletionOptions(max_tokens=8), cancel=cancel)
    assert result.finish_reason == "cancelled" and result.raw == ("",)
    assert not Stub.headers_sent.is_set()  # it returned while the server still held the response
    assert len(Stub.bodies) == 1  # and did not try again


def test_cancel_cuts_the_retry_back_off_short(stub):
    Stub.behaviour = 503
    client = client_for(base_url(stub), retries=3, backoff_s=3600.0)
    backoffs: list[float | None] = []

    class CancelledDuringBackOff(Cancellation):
        def wait(self, timeout_s: float | None = None) -> bool:
            backoffs.append(timeout_s)
            threading.Thread(target=self.cancel).start()  # the editor moves on meanwhile
            return super().wait(timeout_s)  # the capped 10 s back-off, ended by the cancel

    result = client.generate(ADD, CompletionOptions(max_tokens=8), cancel=CancelledDuringBackOff())
    assert result.finish_reason == "cancelled"
    assert len(Stub.bodies) == 1 and len(backoffs) == 1  # one try, one back-off cut short, no retry


def test_retries_back_off_exponentially_and_recover(stub):
    attempts: list[float] = []

    def handle(conn: socket.socket) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:  # the first two connections are dropped, as by a restarting server
            conn.close()
            return
        relay(conn, socket.create_connection(("127.0.0.1", stub.server_address[1])))

    front = Listener(handle)
    try:
        client = client_for(base_url(stub, port=front.port), retries=2, backoff_s=0.2)
        assert client.generate(ADD, CompletionOptions(max_tokens=8)).raw == ("a + b",)
    finally:
        front.close()
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.2 and attempts[2] - attempts[1] >= 0.4  # 0.2 s, then 0.4 s


def test_5xx_is_retried_4xx_is_not(stub):
    Stub.behaviour = 503
    client = client_for(base_url(stub), retries=2, backoff_s=0.01)
    with pytest.raises(RemoteError, match=r"HTTP 503: stub says 503 \(tried 3 times\)"):
        client.generate(ADD, CompletionOptions(max_tokens=8))
    assert len(Stub.bodies) == 3
    Stub.behaviour, Stub.bodies = 400, []
    with pytest.raises(RemoteError, match=r"refused the completion \(HTTP 400: stub says 400\)"):
        client.generate(ADD, CompletionOptions(max_tokens=8))
    assert len(Stub.bodies) == 1
    assert client.describe()["failures"] == 2 and "HTTP 400" in client.describe()["lastError"]


def test_server_down_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = client_for(url, retries=1, backoff_s=0.01)
    client.probe()  # only warns
    assert "not reachable" in client.describe()["lastError"]
    with pytest.raises(RemoteError) as info:
        client.generate(ADD, CompletionOptions(max_tokens=8))
    message = str(info.value)
    assert url in message and "connection refused" in message and "tried 2 times" in message
    assert client.describe()["lastError"] == message


def test_https_with_a_private_ca_bundle(https_front, certs):
    url = f"https://127.0.0.1:{https_front.port}/v1"
    trusted = client_for(url, ca_bundle=str(certs / "ca.pem"))
    assert trusted.generate(ADD, CompletionOptions(max_tokens=8)).raw == ("a + b",)
    with pytest.raises(RemoteError, match="TLS error: CERTIFICATE_VERIFY_FAILED"):
        client_for(url).generate(ADD, CompletionOptions(max_tokens=8))


def test_http_through_a_forward_proxy_with_credentials(stub, proxy, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")  # loopback ignores it ...
    url = base_url(stub)
    direct = client_for(url)
    assert direct.describe()["proxy"] is None
    assert direct.generate(ADD, CompletionOptions(max_tokens=8)).raw == ("a + b",)
    assert proxy.seen == []
    # ... but an explicit proxy is always used.
    client = client_for(url, proxy=proxy.url.replace("http://", "http://user:p%40ss@"))
    assert client.describe()["proxy"] == proxy.url  # without the credentials
    assert client.generate(ADD, CompletionOptions(max_tokens=8)).raw == ("a + b",)
    line, auth = proxy.seen[-1]
    assert line == f"POST {url}/completions HTTP/1.1"  # absolute form
    assert auth == "Basic dXNlcjpwQHNz"  # user:p@ss


def test_https_through_a_connect_proxy(https_front, certs, proxy):
    client = client_for(
        f"https://127.0.0.1:{https_front.port}/v1", ca_bundle=str(certs / "ca.pem"), proxy=proxy.url
    )
    assert client.generate(ADD, CompletionOptions(max_tokens=8)).raw == ("a + b",)
    line, auth = proxy.seen[-1]
    assert line.startswith(f"CONNECT 127.0.0.1:{https_front.port} HTTP/") and auth is None


def test_environment_proxy_for_remote_hosts(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://envproxy.local:3128")
    monkeypatch.setenv("no_proxy", "skip.example")
    assert client_for("https://gpu.example:8000/v1").describe()["proxy"] == "http://envproxy.local:3128"
    assert client_for("https://skip.example:8000/v1").describe()["proxy"] is None
