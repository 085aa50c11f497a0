"""int4 by default without a blocking first start, through the real `serve` process: with no int4
checkpoint the server answers with the float weights at once, builds int4 in the background (one
`$/progress` bar per rung of `load.INT4_LADDER`, percentages), switching to each rung without a
restart: first the 2-minute one, then the refined one.

The test holds the checkpoint's build lock (the same lock two editors' workers take) so the build
provably waits while the float weights serve; releasing it lets the build run.
"""

from __future__ import annotations

import asyncio
import fcntl
import time

import pytest

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine.load import INT4_LADDER, int4_checkpoint, quant_label
from tests.server.helpers import (
    FAST_DEBOUNCE,
    inline,
    open_doc,
    start_client,
    status,
    stop_client,
    suggestion,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(600)]

SETTINGS = {"debounce": FAST_DEBOUNCE, "completion": {"maxTokens": 8}}
BODY = "def add(a, b):\n    \n"


async def wait_for(client, predicate, what: str, timeout_s: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        current = await status(client)
        if predicate(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {current}")
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("backend", [("--worker", "private"), ("--in-process",)], ids=["worker", "in-process"])
async def test_serves_float_while_int4_builds_then_switches(tiny_glm_dir, tmp_path, backend):
    cache = tmp_path / "cache"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    options = EngineOptions(model=str(tiny_glm_dir), quant="int4", cache_dir=str(cache))
    checkpoint = int4_checkpoint(options)  # the first rung's
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    extra = ("--quant", "int4", "--cache-dir", str(cache), *backend)
    with open(checkpoint.with_name(checkpoint.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client, _ = await start_client(
            tiny_glm_dir, env={"CODEGEEX_LSP_RUNTIME_DIR": str(runtime)}, init_options=SETTINGS, extra=extra
        )
        try:
            building = await wait_for(
                client, lambda s: s["state"] == "ready" and s["background"] is not None, "ready while building"
            )
            assert building["quant"] == "none"
            assert building["background"]["task"] == "int4-build"
            open_doc(client, "file:///p/before.py", BODY)
            assert suggestion(await inline(client, "file:///p/before.py", 1, 4))  # float weights serve
            assert not checkpoint.exists()  # the build waits for the lock we hold
        except BaseException:
            await stop_client(client)
            raise
    try:
        top = quant_label("int4")
        switched = await wait_for(
            client, lambda s: s["quant"] == top and s["background"] is None, "the switch to the top int4 rung"
        )
        assert switched["state"] == "ready"
        assert checkpoint.is_file()
        assert all(int4_checkpoint(options, recipe=recipe).is_file() for recipe in INT4_LADDER)
        before = (await status(client))["counters"]["decodes"]
        open_doc(client, "file:///p/after.py", BODY)
        assert suggestion(await inline(client, "file:///p/after.py", 1, 4))  # int4 weights serve
        assert (await status(client))["counters"]["decodes"] == before + 1
        bars = [
            reports
            for reports in client.progress_reports.values()
            if reports and getattr(reports[0], "title", "") and "int4" in reports[0].title
        ]
        assert len(bars) == len(INT4_LADDER), client.progress_reports
        for bar, recipe in zip(bars, INT4_LADDER, strict=True):  # in build order, each its own bar
            assert bar[0].kind == "begin" and bar[-1].kind == "end"
            assert bar[-1].message == f"switched to int4 ({recipe.name})"
            percentages = [r.percentage for r in bar[1:-1] if r.kind == "report" and r.percentage is not None]
            assert percentages and max(percentages) > 0
            assert all(r.kind == "report" for r in bar[1:-1])
        assert "refining" in bars[-1][0].title
    finally:
        await stop_client(client)
