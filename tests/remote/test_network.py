"""The remote backend's network settings against the real llama.cpp server: HTTPS with a private CA
(`ca_bundle`), proxies (a forward proxy for http, CONNECT for https, with credentials), and
retries with exponential backoff when connections drop.

The TLS terminator and the proxy are small socket relays in front of the real server: what is
tested is our client's TLS verification and proxy protocol, end to end."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from codegeex_lsp.complete import complete_planned
from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.errors import RemoteError
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.remote.openai import OpenAIClient, OpenAIOptions
from tests.remote.conftest import needs_llama_cpp
from tests.remote.relays import Listener, Proxy, make_certs, relay

pytestmark = [needs_llama_cpp, pytest.mark.timeout(300)]

ADD = FimRequest(prefix="def add(a, b):\n    return ", suffix="\n\n\nprint(add(1, 2))\n", language="python")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A private CA and a certificate for 127.0.0.1 signed by it (openssl)."""
    return make_certs(tmp_path_factory.mktemp("certs"))


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
        relay(tls, socket.create_connection(("127.0.0.1", llama_server.port)))

    front = Listener(handle)
    yield front
    front.close()


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
        relay(conn, socket.create_connection(("127.0.0.1", llama_server.port)))

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
