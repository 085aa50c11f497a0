"""The OpenAI-compatible backend against a real llama.cpp server on localhost (no mock): FIM through
our prompt format and through the server's `suffix`, streaming, cancel by closing the stream,
server down -> a clear error, and recovery when it is back; then the same through the language
server (`serve --backend openai`)."""

from __future__ import annotations

import threading
import time

import pytest

from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.complete import complete_planned
from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.errors import CodegeexError, RemoteError
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.remote.openai import OpenAIClient, OpenAIOptions
from tests.remote.conftest import LlamaServer, free_port, needs_llama_cpp
from tests.server.helpers import (
    FAST_DEBOUNCE,
    inline,
    open_doc,
    start_client,
    status,
    stop_client,
    suggestion,
    wait_state,
)

pytestmark = [needs_llama_cpp, pytest.mark.timeout(600)]

ADD = FimRequest(
    prefix="def add(a, b):\n    return ",
    suffix="\n\n\nprint(add(1, 2))\n",
    language="python",
    path="calc.py",
    mode="LINE",
)
LONG = FimRequest(
    prefix="# A long essay about sorting algorithms, one per paragraph.\n\n",
    suffix="",
    language="markdown",
    mode="BLOCK",
)


def client_for(server: LlamaServer, **options) -> OpenAIClient:
    return OpenAIClient(OpenAIOptions(base_url=server.base_url, **{"format": "qwen2.5-coder", **options}))


def test_completion_with_our_prompt_format(llama_server):
    client = client_for(llama_server)
    client.probe()
    assert client.model_name.endswith(".gguf")  # the one model it serves, from GET /models
    result = complete_planned(ADD, CompletionOptions(max_tokens=16), client)
    assert result.completion.strip() == "a + b"
    assert result.format == "qwen2.5-coder" and result.finish_reason == "stop"
    assert result.raw[0].startswith(" ")  # the prompt ended before "return "'s space; healed back


def test_completion_through_the_servers_suffix_parameter(llama_server):
    client = client_for(llama_server, format=None, fim="suffix")
    result = complete_planned(ADD, CompletionOptions(max_tokens=8), client)
    # The server builds the prompt from prefix + suffix; what it makes of them is its business.
    assert result.format == "server-fim" and result.generated_tokens > 0 and result.raw[0]


def test_streaming_delivers_tokens_as_they_come(llama_server):
    client = client_for(llama_server)
    seen: list[tuple[float, str]] = []
    result = client.generate(
        LONG,
        CompletionOptions(max_tokens=24),
        on_token=lambda _i, _t, text: seen.append((time.monotonic(), text)),
    )
    assert len(seen) >= 10 and seen[-1][1] == result.raw[0]
    assert seen[5][1].startswith(seen[0][1]) and len(seen[5][1]) > len(seen[0][1])  # text so far, growing
    assert seen[-1][0] - seen[0][0] > 0  # tokens arrived over time, not in one piece


def test_cancel_closes_the_stream(llama_server):
    client = client_for(llama_server)
    cancel = Cancellation()
    n_tokens = 0

    def on_token(_index, _token, _text):
        nonlocal n_tokens
        n_tokens += 1
        if n_tokens == 3:
            cancel.cancel()  # its callback shuts the stream down before this returns

    result = client.generate(LONG, CompletionOptions(max_tokens=400), cancel=cancel, on_token=on_token)
    assert result.finish_reason == "cancelled" and result.completion == ""
    assert n_tokens <= 4 and cancel.n_callbacks == 0
    # The server goes on serving (that it saw the stream closed is test_transport.py's check).
    after = complete_planned(ADD, CompletionOptions(max_tokens=8), client)
    assert after.completion.strip() == "a + b"


def test_cancel_while_waiting_for_the_first_token(llama_server):
    client = client_for(llama_server)
    cancel = Cancellation()
    threading.Timer(0.05, cancel.cancel).start()
    result = complete_planned(LONG, CompletionOptions(max_tokens=400), client, cancel=cancel)
    assert result.finish_reason == "cancelled"


def test_server_down_is_a_clear_error_and_recovery_when_back():
    server = LlamaServer().start()
    # The timeout bounds the wait for each chunk of a live server (generous: the test machine is
    # shared); a server that is down refuses at once, whatever it is.
    client = client_for(server, retries=1, backoff_s=0.1, timeout_s=120)
    try:
        assert complete_planned(ADD, CompletionOptions(max_tokens=8), client).completion.strip() == "a + b"
        server.stop()
        with pytest.raises(RemoteError) as info:
            complete_planned(ADD, CompletionOptions(max_tokens=8), client)
        message = str(info.value)
        assert server.base_url in message and "connection refused" in message and "tried 2 times" in message
        assert client.describe()["lastError"] == message

        server.start()  # the same port
        assert complete_planned(ADD, CompletionOptions(max_tokens=8), client).completion.strip() == "a + b"
        assert client.describe()["lastError"] is None
    finally:
        server.stop()


def test_configuration_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(CodegeexError, match="--base-url"):
        OpenAIClient(OpenAIOptions(base_url="localhost:8000"))
    with pytest.raises(CodegeexError, match="needs --format"):
        OpenAIClient(OpenAIOptions(base_url="http://localhost:8000/v1", fim="prompt"))
    monkeypatch.delenv("CG_TEST_KEY", raising=False)
    with pytest.raises(CodegeexError, match="CG_TEST_KEY"):
        OpenAIClient(OpenAIOptions(base_url="http://localhost:8000/v1", api_key_env="CG_TEST_KEY"))
    bad_bundle = tmp_path / "ca.pem"
    bad_bundle.write_text("not a certificate")
    with pytest.raises(CodegeexError, match="CA bundle"):
        OpenAIClient(OpenAIOptions(base_url="https://localhost:8443/v1", ca_bundle=str(bad_bundle)))
    # Loopback never goes through the environment's proxy; an explicit one is used.
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    assert OpenAIClient(OpenAIOptions(base_url="http://127.0.0.1:8000/v1")).describe()["proxy"] is None
    via = OpenAIClient(OpenAIOptions(base_url="http://10.1.2.3:8000/v1", proxy="http://u:p@proxy.local:3128"))
    assert via.describe()["proxy"] == "http://proxy.local:3128"


# -- through the language server ------------------------------------------------------------------


async def test_language_server_on_the_remote_backend():
    server = LlamaServer(free_port()).start()
    settings = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 16}}
    extra = (
        "--backend",
        "openai",
        "--base-url",
        server.base_url,
        "--format",
        "qwen2.5-coder",
        "--retries",
        "0",
    )
    client, _ = await start_client("unused", init_options=settings, extra=extra)
    try:
        ready = await wait_state(client)
        assert ready["format"] == "qwen2.5-coder" and ready["backend"]["kind"] == "openai"
        uri = "file:///home/user/project/calc.py"
        open_doc(client, uri, ADD.prefix + ADD.suffix)
        assert suggestion(await inline(client, uri, 1, 11)).strip() == "a + b"

        server.stop()
        other = "file:///home/user/project/other.py"
        open_doc(client, other, "def mul(a, b):\n    return \n")
        assert suggestion(await inline(client, other, 1, 11, invoked=True)) == ""  # empty, not an error
        current = await status(client)
        assert current["counters"]["backendErrors"] == 1 and current["counters"]["errors"] == 0
        assert "connection refused" in current["backend"]["lastError"]
        warning = [m for m in client.messages if "backend failed" in m.message]
        assert warning and server.base_url in warning[0].message

        server.start()
        assert suggestion(await inline(client, other, 1, 11, invoked=True))
        assert any("answers again" in m.message for m in client.messages)
    finally:
        await stop_client(client)
        server.stop()
