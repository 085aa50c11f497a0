"""The peer's driver: llama.vscode's provider logic against a fake `/infill` (httpx's MockTransport)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import httpx

from codegeex_lsp.bench.latency import peer, run
from codegeex_lsp.bench.latency.peer import ResultCache, Token, VscodeLlama
from codegeex_lsp.bench.latency.replay import replay_peer
from codegeex_lsp.bench.latency.typist import Session, schedule, split_keystrokes
from tests.support.stand_in_llama_server import write_stand_in


def fake_server(answer, delay_s: float = 0.0, bodies: list | None = None):
    async def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if bodies is not None:
            bodies.append(body)
        await asyncio.sleep(delay_s)
        content = answer(body) if callable(answer) else answer
        timings = {"prompt_ms": 12.5, "predicted_ms": 30.0, "prompt_n": 3, "predicted_n": 4}
        return httpx.Response(200, json={"content": content, "timings": timings})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url="http://peer")


def test_the_infill_body_is_llama_vscodes():
    body = peer.infill_body("a\n", "\nb\n", "x = ", 4)
    assert body["n_predict"] == 128 and body["t_max_prompt_ms"] == 500 and body["t_max_predict_ms"] == 500
    assert body["samplers"] == ["top_k", "top_p", "infill"] and body["top_k"] == 40 and body["top_p"] == 0.99
    assert body["cache_prompt"] is True and body["id_slot"] == 0 and body["n_indent"] == 4
    assert (body["input_prefix"], body["prompt"], body["input_suffix"], body["input_extra"]) == (
        "a\n",
        "x = ",
        "\nb\n",
        [],
    )
    assert "n_cmpl" not in body and "n_indent" not in peer.infill_body("", "", "", 0)
    assert peer.infill_body("", "", "", 0, n_cmpl=3)["n_cmpl"] == 3
    assert peer.infill_body("", "", "", 0, greedy=True)["top_k"] == 1


def test_suggestions_that_repeat_the_text_below_are_dropped():
    doc = ["def f():", "    ", "    return 1", ""]
    assert peer.should_discard(["return 1"], doc, 1, "    ", "")
    assert not peer.should_discard(["x = 2"], doc, 1, "    ", "")
    assert peer.should_discard([], doc, 1, "    ", "")
    assert peer.should_discard(["  "], doc, 1, "    ", "")
    assert peer.should_discard(["", "    return 1"], doc, 1, "    ", "")
    assert not peer.should_discard(["anything"], ["last line"], 0, "", "")


def test_a_suggestion_is_cut_at_the_text_right_of_the_cursor():
    assert peer.update_suggestion(["a, b)"], ")") == "a, b"
    assert peer.update_suggestion(["a", "b"], ")") == "a"
    assert peer.update_suggestion(["a", "b"], "") == "a\nb"
    assert peer.remove_leading_spaces("    x", 2) == "  x"


def test_the_cache_serves_exact_hits_and_typed_through_prefixes():
    cache = ResultCache(max_keys=2)
    cache.put(cache.key("p", "s", "x = "), ["foo(1)"])
    assert cache.lookup("p", "s", "x = ") == (["foo(1)"], "cache")
    assert cache.lookup("p", "s", "x = fo") == (["o(1)"], "typed-through")
    assert cache.lookup("p", "s", "x = b") == (None, None)
    cache.put(cache.key("p", "s", "a"), ["1"])
    cache.put(cache.key("p", "s", "b"), ["2"])
    assert cache.lookup("p", "s", "x = ") == (None, None)  # evicted: 2 keys at most


async def test_provide_sends_line_windows_and_caches():
    bodies: list = []
    async with fake_server("foo()\n", bodies=bodies) as http:
        llama = VscodeLlama(http)
        doc = ["import os", "x = ", "print(x)"]
        answer = await llama.provide(doc, 1, 4, Token(), time.monotonic())
        assert (answer.text, answer.source) == ("foo()", "model")
        assert answer.first_token_ms is not None and answer.first_token_ms >= 12.5
        assert bodies[0]["input_prefix"] == "import os\n" and bodies[0]["prompt"] == "x = "
        assert bodies[0]["input_suffix"] == "\nprint(x)\n"
        await llama.settle()  # the background request for the suggestion after this one
        assert len(bodies) == 2 and bodies[1]["prompt"] == "x = foo()"
        again = await llama.provide(["import os", "x = f", "print(x)"], 1, 5, Token(), time.monotonic())
        assert (again.text, again.source) == ("oo()", "typed-through") and len(bodies) == 2


async def test_no_automatic_completion_with_a_long_line_suffix():
    async with fake_server("zzz") as http:
        answer = await VscodeLlama(http).provide(["f(a, bbbbbbbbbbbb)"], 0, 2, Token(), time.monotonic())
        assert answer.text == "" and answer.source is None


async def test_a_request_waits_for_the_one_in_flight_and_gives_up_when_cancelled():
    async with fake_server("1", delay_s=0.4) as http:
        llama = VscodeLlama(http)
        first = asyncio.ensure_future(llama.provide(["a = "], 0, 4, Token(), time.monotonic()))
        await asyncio.sleep(0.05)
        token = Token()
        second = asyncio.ensure_future(llama.provide(["a = 1"], 0, 5, token, time.monotonic()))
        await asyncio.sleep(0.05)
        token.cancelled = True
        assert (await second).cancelled  # gave up while polling, before any request of its own
        assert (await first).text == "1"  # the first one's HTTP request is never aborted


async def test_replay_classifies_the_peers_answers():
    typed = "x = 1\ny = 2"
    keys = schedule(split_keystrokes(typed), random.Random(0), cps=20.0)
    session = Session(0, "a.py", "file:///a.py", "python", "import os\n\n", 1, keys, typed)
    async with fake_server(lambda body: "1" if body["prompt"].endswith("= ") else "", delay_s=0.02) as http:
        requests, first_tokens = await replay_peer(VscodeLlama(http), session, tail_s=2.0)
    assert len(requests) == len(keys) and first_tokens
    outcomes = {r.outcome for r in requests}
    assert outcomes <= {"shown", "typed-through", "empty", "superseded", "cancelled"}
    assert "shown" in outcomes and "empty" in outcomes
    assert all(r.answered_s is not None for r in requests)
    assert requests[0].rest == typed[1:] + "\n"


def test_a_run_with_both_sides(tiny_model_factory, tmp_path, monkeypatch):
    """Our real server (tiny model) beside a stand-in llama-server process speaking /health and /infill."""
    binary = write_stand_in(tmp_path / "llama-server")
    log = tmp_path / "infill.jsonl"
    monkeypatch.setenv("STAND_IN_LOG", str(log))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    out = tmp_path / "out"
    argv = [
        *(
            "--model",
            str(tiny_model_factory("qwen2")),
            "--dtype",
            "float32",
            "--quant",
            "none",
            "--threads",
            "1",
            "--in-process",
        ),
        *("--keystrokes", "16", "--session-keys", "8", "--tail-s", "2", "--debounce-ms", "0"),
        *(
            "--llama-server",
            str(binary),
            "--peer-gguf",
            str(gguf),
            "--out",
            str(out),
            "--json-out",
            str(out / "l.json"),
        ),
    ]
    assert run.main(argv) == 0
    result = json.loads((out / "l.json").read_text())
    assert result["peer_reason"] is None
    for side in ("ours", "peer"):
        summary = result[side]
        assert summary["requests"] == 16 == sum(summary["outcomes"].values())
        for key in (
            "first_token_p50_ms",
            "first_suggestion_after_pause_p50_ms",
            "final_p50_ms",
            "final_p95_ms",
            "shown",
            "usefulness",
        ):
            assert key in summary
    assert result["peer"]["first_token_ms"]["n"] > 0 and result["peer"]["outcomes"]["shown"] > 0
    argv_seen = json.loads(Path(str(log) + ".argv").read_text())
    assert argv_seen[argv_seen.index("-m") + 1] == str(gguf)
    assert argv_seen[argv_seen.index("--cache-reuse") + 1] == "256"
    bodies = [json.loads(line) for line in log.read_text().splitlines()]
    assert bodies and all(b["n_predict"] == 128 and b["cache_prompt"] for b in bodies)
    report = (out / "latency.md").read_text()
    assert "| | ours | peer |" in report and "llama-server (peer) RSS" in report
    assert all(sample["peer_mib"] > 0 for sample in result["memory"]["samples"])


async def test_a_missing_llama_server_makes_the_peer_null_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("CODEGEEX_LLAMA_CPP_BIN", str(tmp_path / "nowhere"))
    args = run.parser().parse_args([])
    server, reason = await run.start_peer(args, tmp_path, print)
    assert server is None and reason.startswith("llama-server missing:") and "nowhere" in reason
