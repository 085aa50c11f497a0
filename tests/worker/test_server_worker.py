"""Language servers (real `codegeex-lsp serve` processes) on model workers: two servers share one
worker and one model load; a worker killed 20 times mid-request never takes the server down; the
local telemetry counts round-trip through `codegeex-lsp stats`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from tests.server.helpers import (
    FAST_DEBOUNCE,
    inline,
    inline_params,
    open_doc,
    start_client,
    status,
    stop_client,
    suggestion,
    wait_state,
)
from tests.worker.conftest import pid_alive

pytestmark = pytest.mark.timeout(600)

SETTINGS = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 8}}
BODY = "def add(a, b):\n    \n"


async def test_two_servers_share_one_worker(tiny_glm_dir, runtime):
    first, _ = await start_client(tiny_glm_dir, init_options=SETTINGS)
    second = None
    try:
        await wait_state(first)
        second, _ = await start_client(tiny_glm_dir, init_options=SETTINGS)
        await wait_state(second)
        one, two = (await status(first))["backend"], (await status(second))["backend"]
        assert one["kind"] == two["kind"] == "worker" and one["mode"] == "shared"
        assert one["pid"] == two["pid"]  # the same worker process ...
        assert two["loads"] == 1  # ... which loaded the model once
        assert two["clients"] == 2
        for client in (first, second):  # the servers stay small: torch lives in the worker only
            assert "libtorch" not in Path(f"/proc/{client._server.pid}/maps").read_text()
        assert "libtorch" in Path(f"/proc/{two['pid']}/maps").read_text()
        for client, uri in ((first, "file:///home/user/project/one.py"), (second, "file:///home/user/project/two.py")):
            open_doc(client, uri, BODY)
            assert suggestion(await inline(client, uri, 1, 4))
        assert (await status(second))["backend"]["requests"] == 2
    finally:
        await stop_client(first)
        if second is not None:
            await stop_client(second)


@pytest.mark.parametrize(
    ("flags", "kind"), [(("--worker", "private"), "worker"), (("--in-process",), "in-process")]
)
async def test_private_worker_and_in_process_modes(tiny_glm_dir, runtime, flags, kind):
    client, _ = await start_client(tiny_glm_dir, init_options=SETTINGS, extra=flags)
    try:
        await wait_state(client)
        backend = (await status(client))["backend"]
        assert backend["kind"] == kind
        if kind == "worker":
            assert backend["mode"] == "private" and backend["pid"] != client._server.pid
        open_doc(client, "file:///home/user/project/mode.py", BODY)
        assert suggestion(await inline(client, "file:///home/user/project/mode.py", 1, 4))
        assert list(runtime.iterdir()) == []  # neither mode uses the shared runtime dir
    finally:
        await stop_client(client)


async def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_worker_killed_20_times_mid_request(tiny_glm_dir, runtime):
    # 50 ms per token and 24 tokens (the tiny model never stops early here): each decode runs
    # long enough to be killed inside, and the next one is not slow.
    env = {"CODEGEEX_LSP_TOKEN_DELAY_MS": "50"}
    settings = {**SETTINGS, "completion": {"maxTokens": 24}}
    client, _ = await start_client(tiny_glm_dir, init_options=settings, env=env)
    try:
        await wait_state(client)
        killed: list[int] = []
        for round_ in range(20):
            uri = f"file:///home/user/project/crash{round_}.py"  # a new document each round: no cache hit
            open_doc(client, uri, BODY)
            before = (await status(client))["counters"]
            request = asyncio.ensure_future(
                client.text_document_inline_completion_async(inline_params(uri, 1, 4, invoked=True))
            )

            async def decoding(before=before) -> bool:
                return (await status(client))["counters"]["decodes"] > before["decodes"]

            await wait_for(decoding, 120, "the decode to start")
            pid = (await status(client))["backend"]["pid"]
            await asyncio.sleep(0.1)  # in the worker now (decoding, or still loading after a restart)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            answer = await asyncio.wait_for(request, 60)  # a result (empty), not an error or a hang
            assert isinstance(answer, lsp.InlineCompletionList) and len(answer.items) == 0, round_
            after = (await status(client))["counters"]
            assert after["backendErrors"] == before["backendErrors"] + 1

            # The next request works, on a new worker.
            again = await asyncio.wait_for(
                client.text_document_inline_completion_async(inline_params(uri, 1, 4, invoked=True)), 120
            )
            assert suggestion(again), round_
            assert (await status(client))["backend"]["pid"] not in killed
        current = await status(client)
        assert current["state"] == "ready"
        assert current["backend"]["crashes"] == 20 and current["backend"]["restarts"] == 20
        assert current["counters"]["errors"] == 0  # no internal error: each crash was a backend error
        assert not any(pid_alive(pid) for pid in killed)
        warnings = [m for m in client.messages if "backend failed" in m.message]
        assert warnings and warnings[0].type == lsp.MessageType.Warning
    finally:
        await stop_client(client)


def stats_json(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "codegeex_lsp.cli", "stats", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


async def test_telemetry_counts_round_trip_through_stats(tiny_glm_dir, runtime, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEGEEX_LSP_STATE", str(tmp_path / "state"))
    client, _ = await start_client(tiny_glm_dir, init_options=SETTINGS)
    shown = {"python": 0, "javascript": 0}
    try:
        await wait_state(client)
        docs = {
            "python": ("file:///home/user/project/t.py", BODY, (1, 4)),
            "javascript": ("file:///home/user/project/t.js", "function add(a, b) {\n  \n}\n", (1, 2)),
        }
        for language, (uri, text, (line, character)) in docs.items():
            open_doc(client, uri, text, language=language)
            for offset in range(2):  # every suggestion returned counts as shown (cache hits too)
                if suggestion(await inline(client, uri, line, character - offset, invoked=True)):
                    shown[language] += 1
        assert shown["python"] >= 1
        client.protocol.notify("codegeex/accepted", {"uri": docs["python"][0]})
        client.protocol.notify("codegeex/dismissed", {"uri": docs["javascript"][0]})
        client.protocol.notify("codegeex/dismissed", None)
        await status(client)  # a round trip: the notifications were handled
    finally:
        await stop_client(client)  # shutdown + exit flush the counts

    report = stats_json(os.environ.copy())
    rows = {row["language"]: row for row in report["languages"]}
    assert rows["python"]["shown"] == shown["python"] and rows["python"]["accepted"] == 1
    assert rows["python"]["acceptance_rate"] == pytest.approx(1 / shown["python"])
    assert rows["javascript"]["dismissed"] == 1 and rows["javascript"]["shown"] == shown["javascript"]
    assert rows["unknown"]["dismissed"] == 1 and rows["unknown"]["shown"] == 0

    table = subprocess.run(
        [sys.executable, "-m", "codegeex_lsp.cli", "stats"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "python" in table.stdout and "acceptance" in table.stdout
    assert "never sent anywhere" in table.stderr
