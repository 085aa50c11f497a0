"""The real server over stdio with the tiny model: capabilities, inline completion, cache,
typed-through, configuration, the completion fallback, UTF-16 positions and bad input.

One server process serves the whole module (starting torch is the expensive part); each test uses
its own document URIs and compares status counters before and after.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcMethodNotFound

from tests.server.helpers import (
    FAST_DEBOUNCE,
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

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]

SETTINGS = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 12}}
# An empty function body: BLOCK mode; the tiny model answers something non-empty here.
BODY = "def add(a, b):\n    \n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tiny_glm_dir, tmp_path_factory):
    # A runtime dir of its own: a shared worker that an earlier test module left warm for the same
    # tiny model would make the load instant, and the "request while loading" test meaningless.
    runtime = tmp_path_factory.mktemp("runtime-served")
    runtime.chmod(0o700)
    env = {"CODEGEEX_LSP_RUNTIME_DIR": str(runtime)}
    client, result = await start_client(tiny_glm_dir, env=env, init_options=SETTINGS)
    # Right after `initialized` the model is still loading: a cold worker process must start and
    # import torch (seconds) before it can even begin.
    open_doc(client, "file:///home/user/project/early.py", BODY)
    early = (await inline(client, "file:///home/user/project/early.py", 1, 4), await status(client))
    ready = await wait_state(client)
    yield client, result, ready, early
    await stop_client(client)


@pytest.fixture
def client(served):
    return served[0]


async def counters(client) -> dict[str, int]:
    return (await status(client))["counters"]


async def test_capabilities_and_progress(served, tiny_glm_dir):
    client, result, ready, _ = served
    caps = result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.position_encoding == lsp.PositionEncodingKind.Utf16
    assert caps.completion_provider is None  # the client has inline completion: no duplicate path
    assert caps.text_document_sync.change == lsp.TextDocumentSyncKind.Incremental
    assert result.server_info.name == "codegeex-lsp"
    assert ready["state"] == "ready" and ready["model"] == str(tiny_glm_dir) and ready["format"]
    # $/progress around the load: begin first, end last, on a token the server created.
    (reports,) = client.progress_reports.values()
    assert reports[0].kind == "begin" and reports[-1].kind == "end"


async def test_request_while_loading_gets_an_empty_result(served):
    result, current = served[3]
    assert current["state"] == "loading"
    assert len(result.items) == 0
    assert current["counters"]["requests"] == current["counters"]["empty"] == 1


async def test_inline_completion_then_cache_hit(client):
    uri = "file:///home/user/project/inline.py"
    open_doc(client, uri, BODY)
    before = await counters(client)
    first = await inline(client, uri, 1, 4)
    text = suggestion(first)
    assert text
    item = first.items[0]
    assert item.range.start == item.range.end == lsp.Position(line=1, character=4)
    middle = await counters(client)
    assert middle["decodes"] == before["decodes"] + 1
    assert middle["served"] == before["served"] + 1

    again = await inline(client, uri, 1, 4)
    assert suggestion(again) == text
    after = await counters(client)
    assert after["cacheHits"] == middle["cacheHits"] + 1
    assert after["decodes"] == middle["decodes"]


async def test_typed_through_without_model_call(client):
    uri = "file:///home/user/project/typed.py"
    open_doc(client, uri, BODY)
    text = suggestion(await inline(client, uri, 1, 4))
    assert len(text.strip()) > 2
    before = await counters(client)
    # Type the suggestion's first character (whatever the random model made it).
    typed = text[0]
    insert(client, uri, 2, 1, 4, typed)
    line, character = (2, 0) if typed == "\n" else (1, 4 + len(typed.encode("utf-16-le")) // 2)
    rest = await inline(client, uri, line, character)
    assert suggestion(rest) == text[1:]
    after = await counters(client)
    assert after["typedThrough"] == before["typedThrough"] + 1
    assert after["decodes"] == before["decodes"]
    assert after["cacheHits"] == before["cacheHits"]


async def test_configuration_change(client):
    uri = "file:///home/user/project/config.py"
    open_doc(client, uri, BODY)
    long_text = suggestion(await inline(client, uri, 1, 4))
    try:
        configure(client, {**SETTINGS, "completion": {"maxTokens": 2}})
        short_text = suggestion(await inline(client, uri, 1, 4))
        assert len(short_text) < len(long_text)

        configure(client, {**SETTINGS, "languages": {"disabled": ["python"]}})
        before = await counters(client)
        assert suggestion(await inline(client, uri, 1, 4)) == ""
        after = await counters(client)
        assert after["decodes"] == before["decodes"] and after["empty"] == before["empty"] + 1

        n_messages = len(client.messages)
        configure(client, {**SETTINGS, "completion": {"maxTokens": "many"}, "bogus": 1})
        await status(client)  # a round trip: the warning was sent before its answer
        warnings = client.messages[n_messages:]
        assert warnings and warnings[0].type == lsp.MessageType.Warning
        assert "completion.maxTokens" in warnings[0].message and "bogus" in warnings[0].message
        # The invalid value fell back: completions still come.
        assert suggestion(await inline(client, uri, 1, 4))
    finally:
        configure(client, SETTINGS)


async def complete_at(client, uri: str, line: int, character: int) -> lsp.CompletionList:
    return await client.text_document_completion_async(
        lsp.CompletionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=character),
            context=lsp.CompletionContext(trigger_kind=lsp.CompletionTriggerKind.Invoked),
        )
    )


async def test_completion_fallback(client):
    uri = "file:///home/user/project/fallback.py"
    open_doc(client, uri, "import os\nvalue = os.pa")
    result = await complete_at(client, uri, 1, 13)
    assert isinstance(result, lsp.CompletionList) and result.is_incomplete
    assert len(result.items) == 1
    edit = result.items[0].text_edit
    # The edit replaces the word being typed ("pa") and repeats it, so client-side filtering keeps it.
    assert edit.range.start == lsp.Position(line=1, character=11)
    assert edit.range.end == lsp.Position(line=1, character=13)
    assert edit.new_text.startswith("pa") and len(edit.new_text) > 2


async def test_utf16_positions_with_emoji_cjk_and_crlf(client):
    uri = "file:///home/user/project/unicode.py"
    # 😀 is 2 UTF-16 units, 你 and 好 one each; CRLF line ends.
    open_doc(client, uri, "s = '😀你好'\r\nvalue_one\r\n")
    # UTF-16 column 7 is right after the emoji (a code-point reading would land after 你).
    insert(client, uri, 2, 0, 7, "X")
    insert(client, uri, 3, 1, 9, "_two")

    # The fallback's edit starts at the word before the cursor, as the server sees the text.
    edit = (await complete_at(client, uri, 0, 8)).items[0].text_edit
    assert edit.range.start == lsp.Position(line=0, character=7)
    assert edit.new_text.startswith("X") and not edit.new_text.startswith("X你")
    edit = (await complete_at(client, uri, 1, 13)).items[0].text_edit
    assert edit.range.start.character == 0 and edit.new_text.startswith("value_one_two")

    # A character inside the emoji's surrogate pair snaps back to the emoji's start (column 5);
    # one past the end of a line clamps to its end (11 UTF-16 units after the insert).
    inside = await inline(client, uri, 0, 6, invoked=True)
    past_end = await inline(client, uri, 0, 500, invoked=True)
    assert inside.items[0].range.start == lsp.Position(line=0, character=5)
    assert past_end.items[0].range.start == lsp.Position(line=0, character=11)


async def test_accepted_and_dismissed_are_counted(client):
    before = await counters(client)
    client.protocol.notify("codegeex/accepted", {"uri": "file:///home/user/project/inline.py"})
    client.protocol.notify("codegeex/dismissed", {"uri": "file:///home/user/project/inline.py"})
    client.protocol.notify("codegeex/dismissed", None)
    after = await counters(client)
    assert after["accepted"] == before["accepted"] + 1
    assert after["dismissed"] == before["dismissed"] + 2


# -- bad input: each followed by a good request ---------------------------------------------------


async def good_request_works(client) -> None:
    uri = "file:///home/user/project/good.py"
    open_doc(client, uri, BODY)
    assert suggestion(await inline(client, uri, 1, 4))


async def test_positions_out_of_range_are_clamped(client):
    uri = "file:///home/user/project/range.py"
    open_doc(client, uri, "x = 1\n")
    for line, character in ((0, 10_000), (10_000, 0), (2**31 - 1, 2**31 - 1)):
        result = await inline(client, uri, line, character, invoked=True)
        for item in result.items:
            assert item.range.start.line <= 1
    await good_request_works(client)


async def test_unopened_document_gets_empty_result(client):
    uri = "file:///home/user/project/never-opened.py"
    assert suggestion(await inline(client, uri, 0, 0, invoked=True)) == ""
    insert(client, uri, 2, 0, 0, "x")  # didChange for it is ignored too
    client.text_document_did_close(
        lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    await good_request_works(client)


async def test_unknown_methods(client):
    with pytest.raises(JsonRpcMethodNotFound):
        await client.protocol.send_request_async("codegeex/noSuchMethod", {})
    client.protocol.notify("codegeex/noSuchNotification", {"x": 1})
    client.protocol.notify("$/someClientThing", {})
    await good_request_works(client)


async def test_binary_junk_in_documents(client):
    uri = "file:///home/user/project/junk.py"
    junk = "x = '\x00\x01\x02'\n\ud800 = \udfff\n" + "\ufffe\x7f" * 10 + "\n\x00" * 5 + "\n"
    open_doc(client, uri, junk)
    insert(client, uri, 2, 1, 1, "\udbff\x00")
    for line in range(0, 9):
        await inline(client, uri, line, 3, invoked=True)
    await good_request_works(client)


async def test_huge_file_is_bounded_and_loop_stays_responsive(client):
    uri = "file:///home/user/project/huge.py"
    body = "".join(f"def f{i}(x):\n    y = x + {i}\n    return y * 2\n\n" for i in range(12_500))
    assert body.count("\n") == 50_000
    open_doc(client, uri, body + "def tail(a, b):\n    ")
    request = asyncio.ensure_future(inline(client, uri, 50_001, 4))
    # The event loop keeps answering while the document is parsed and the prompt built: the status
    # request sent after the completion is answered before it (order, not a clock).
    await status(client)
    assert not request.done()
    await request
    insert(client, uri, 2, 50_001, 4, "r")
    await inline(client, uri, 50_001, 5)
    await good_request_works(client)


async def test_no_internal_errors_in_this_module(client):
    """Runs last: every request above was answered without an exception inside the server."""
    assert (await counters(client))["errors"] == 0
