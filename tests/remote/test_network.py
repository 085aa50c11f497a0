"""The remote backend's network settings against the real llama.cpp server: HTTPS with a private CA
(`ca_bundle`), proxies (a forward proxy for http, CONNECT for https, with credentials), and
retries with exponential backoff when connections drop.

The TLS terminator and the proxy are small socket relays in front of the real server: what is
tested is our client's TLS verification and proxy protocol, end to end."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time

import pytest

from codegeex_lsp.complete import complete_planned
from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.errors import RemoteError
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.remote.openai import OpenAIClient, OpenAIOptions
from tests.remote.conftest import needs_llama_cpp

pytestmark = [needs_llama_cpp, pytest.mark.timeout(300)]

ADD = FimRequest(prefix="def add(a, b):\n    return ", suffix="\n\n\nprint(add(1, 2))\n", language="python")


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _relay(a: socket.socket, b: socket.socket) -> None:
    threading.Thread(target=_pump, args=(a, b), daemon=True).start()
    threading.Thread(target=_pump, args=(b, a), daemon=True).start()


class Listener:
    """Accepts on 127.0.0.1:<free port> and hands each connection to `handle` on a thread."""

    def __init__(self, handle) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._handle = handle
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A private CA and a certificate for 127.0.0.1 signed by it (openssl)."""
    d = tmp_path_factory.mktemp("certs")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=codegeex test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return d


@pytest.fixture(scope="module")
def https_front(llama_server, certs):
    """TLS on 127.0.0.1:<port>, relayed to the llama.cpp server's plain HTTP."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")

    def handle(conn: socket.socket) -> None:
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()  # the client refused our certificate
            return
        _relay(tls, socket.create_connection(("127.0.0.1", llama_server.port)))

    front = Listener(handle)
    yield front
    front.close()


class Proxy:
    """An HTTP proxy: CONNECT tunnels, and absolute-form requests forwarded in origin form."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []  # (request line, Proxy-Authorization)
        self.listener = Listener(self._handle)
        self.url = f"http://127.0.0.1:{self.listener.port}"

    def _handle(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        line, *headers = head.decode("latin-1").split("\r\n")
        auth = next(
            (h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("proxy-authorization:")),
            None,
        )
        self.seen.append((line, auth))
        method, target, version = line.split(" ")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            # http://host:port/path -> /path, to host:port
            hostport, _, path = target.removeprefix("http://").partition("/")
            host, _, port = hostport.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            kept = [h for h in headers if not h.lower().startswith("proxy-authorization:")]
            upstream.sendall(
                ("\r\n".join([f"{method} /{path} {version}", *kept]) + "\r\n\r\n").encode("latin-1") + rest
            )
        _relay(conn, upstream)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy():
    made = Proxy()
    yield made
    made.close()


def complete(client: OpenAIClient) -> str:
    return complete_planned(ADD, CompletionOptions(max_tokens=8), client).completion.strip()


def test_https_with_a_private_ca_bundle(https_front, certs):
    base = f"https://127.0.0.1:{https_front.port}/v1"
    trusted = OpenAIClient(
        OpenAIOptions(base_url=base, format="qwen2.5-coder", ca_bundle=str(certs / "ca.pem"))
    )
    assert complete(trusted) == "a + b"

    untrusted = OpenAIClient(OpenAIOptions(base_url=base, format="qwen2.5-coder", retries=0))
    with pytest.raises(RemoteError, match="TLS error: CERTIFICATE_VERIFY_FAILED"):
        complete(untrusted)


def test_http_through_a_forward_proxy_with_credentials(llama_server, proxy):
    # Loopback targets skip the environment's proxy, but an explicit one is always used.
    client = OpenAIClient(
        OpenAIOptions(
            base_url=llama_server.base_url,
            format="qwen2.5-coder",
            proxy=proxy.url.replace("http://", "http://user:p%40ss@"),
        )
    )
    assert complete(client) == "a + b"
    line, auth = proxy.seen[-1]
    assert line == f"POST {llama_server.base_url}/completions HTTP/1.1"  # absolute form
    assert auth == "Basic dXNlcjpwQHNz"  # user:p@ss


def test_https_through_a_connect_proxy(https_front, certs, proxy):
    client = OpenAIClient(
        OpenAIOptions(
            base_url=f"https://127.0.0.1:{https_front.port}/v1",
            format="qwen2.5-coder",
            ca_bundle=str(certs / "ca.pem"),
            proxy=proxy.url,
        )
    )
    assert complete(client) == "a + b"
    line, auth = proxy.seen[-1]
    assert line.startswith(f"CONNECT 127.0.0.1:{https_front.port} HTTP/") and auth is None


def test_retries_back_off_exponentially_and_recover_within_one_request(llama_server):
    attempts: list[float] = []

    def handle(conn: socket.socket) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:  # the first two connections are dropped, as by a restarting server
            conn.close()
            return
        _relay(conn, socket.create_connection(("127.0.0.1", llama_server.port)))

    front = Listener(handle)
    try:
        client = OpenAIClient(
            OpenAIOptions(
                base_url=f"http://127.0.0.1:{front.port}/v1", format="qwen2.5-coder", retries=2, backoff_s=0.3
            )
        )
        assert complete(client) == "a + b"
    finally:
        front.close()
    assert len(attempts) == 3
    first_gap, second_gap = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert 0.3 <= first_gap < 2.0 and 0.6 <= second_gap < 3.0  # 0.3 s, then 0.6 s
