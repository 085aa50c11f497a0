"""Cancellation, supersession and debounce against a server slowed down on purpose.

CODEGEEX_LSP_TOKEN_DELAY_MS makes every decoded token take 100 ms, so a decode of the tiny model is
slow enough to be cancelled while it runs.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcRequestCancelled

from tests.server.helpers import (
    FAST_DEBOUNCE,
    configure,
    inline,
    inline_params,
    insert,
    open_doc,
    start_client,
    status,
    stop_client,
    suggestion,
    wait_state,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]

TOKEN_DELAY_MS = 100
SETTINGS = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 64}}
BODY = "def add(a, b):\n    \n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tiny_glm_dir):
    client, _ = await start_client(
        tiny_glm_dir, init_options=SETTINGS, env={"CODEGEEX_LSP_TOKEN_DELAY_MS": str(TOKEN_DELAY_MS)}
    )
    await wait_state(client)
    yield client
    await stop_client(client)


@pytest.fixture(autouse=True)
def reset_settings(client):
    configure(client, SETTINGS)
    yield
    configure(client, SETTINGS)


async def counters(client) -> dict[str, int]:
    return (await status(client))["counters"]


async def wait_for_decodes(client, n: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (await counters(client))["decodes"] < n:
        assert time.monotonic() < deadline, "the decode never started"
        await asyncio.sleep(0.02)


async def test_cancel_request_stops_the_decode(client):
    uri = "file:///home/user/project/cancel.py"
    open_doc(client, uri, BODY)
    before = await counters(client)
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(
            lsp.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 4), msg_id="cancel-me"
        )
    )
    await wait_for_decodes(client, before["decodes"] + 1)
    await asyncio.sleep(0.3)  # a few tokens into the decode
    client.protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcRequestCancelled) as info:
        await pending
    assert info.value.code == -32800

    # The model thread stopped early instead of finishing the 64-token decode (told by the
    # decode's own record, not by a clock), and the next request is served.
    configure(client, {**SETTINGS, "completion": {"maxTokens": 1}})
    other = "file:///home/user/project/after-cancel.py"
    open_doc(client, other, BODY)
    result = await inline(client, other, 1, 4)
    assert suggestion(result)
    cancelled = [d for d in (await status(client))["recentDecodes"] if d["finish"] == "cancelled"]
    assert cancelled and cancelled[-1]["generatedTokens"] < SETTINGS["completion"]["maxTokens"]
    after = await counters(client)
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["decodes"] == before["decodes"] + 2


async def test_newer_request_supersedes_older(client):
    configure(client, {**SETTINGS, "completion": {"maxTokens": 8}})
    uri = "file:///home/user/project/supersede.py"
    open_doc(client, uri, BODY)
    before = await counters(client)
    older = asyncio.ensure_future(inline(client, uri, 1, 4))
    await wait_for_decodes(client, before["decodes"] + 1)
    insert(client, uri, 2, 1, 4, "r")  # the user typed on
    newer = await inline(client, uri, 1, 5)
    assert len((await older).items) == 0  # an empty result, not an error
    assert suggestion(newer)
    after = await counters(client)
    assert after["superseded"] == before["superseded"] + 1
    assert after["served"] == before["served"] + 1


async def test_debounce_skips_superseded_requests(client):
    configure(
        client,
        {
            **SETTINGS,
            "completion": {"maxTokens": 4},
            "debounce": {"minMs": 400, "maxMs": 400, "initialMs": 400},
        },
    )
    uri = "file:///home/user/project/debounce.py"
    open_doc(client, uri, BODY)
    before = await counters(client)
    first = asyncio.ensure_future(inline(client, uri, 1, 4))
    await asyncio.sleep(0.05)
    insert(client, uri, 2, 1, 4, "r")
    second = await inline(client, uri, 1, 5)
    assert len((await first).items) == 0
    assert suggestion(second)
    after = await counters(client)
    assert after["decodes"] == before["decodes"] + 1  # the first never reached the model
    assert after["superseded"] == before["superseded"] + 1
