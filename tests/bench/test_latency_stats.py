"""`bench latency`'s accounting: outcomes, waits after pauses, usefulness, percentiles, the report."""

from __future__ import annotations

import math

import pytest

from codegeex_lsp.bench.latency import report
from codegeex_lsp.bench.latency.replay import attach_sources
from codegeex_lsp.bench.latency.stats import Request, classify, continues, dist, judge, percentile, summarize


def req(sent, answered, *, next_key=None, text="", error=None, source=None, pause=False, rest="", key=0):
    return Request(
        0,
        key,
        sent,
        pause_after=pause,
        rest=rest,
        next_key_s=next_key,
        answered_s=answered,
        error_code=error,
        text=text,
        source=source,
    )


def test_every_outcome():
    assert classify(req(0, None)) == "timeout"
    late = req(0, 9.0, text="abc", source="model")
    late.timed_out = True  # answered after the session's tail: not counted as shown
    assert classify(late) == "timeout"
    assert classify(req(0, 0.5, next_key=0.2, error=-32800)) == "cancelled"
    assert classify(req(0, 0.1, error=-32603)) == "error"
    assert classify(req(0, 0.3, next_key=0.2, text="abc")) == "superseded"  # the editor had moved on
    assert classify(req(0, 0.1, next_key=0.2, text="")) == "empty"
    assert classify(req(0, 0.1, next_key=0.2, text="abc", source="model")) == "shown"
    assert classify(req(0, 0.1, text="bc", source="typed-through")) == "typed-through"
    assert classify(req(0, 0.1, text="abc")) == "shown"  # the last key: no next keystroke


def test_continues_is_the_rest_of_the_suggestion_on_screen():
    assert continues("abc", "a", "bc")
    assert not continues("abc", "x", "bc")
    assert not continues("", "a", "bc")
    assert not continues("abc", "abc", "")


def test_judge_full_first_line_and_saved_characters():
    assert judge("foo(x)\n", "foo(x)\nbar\n") == judge("foo(x)", "foo(x)\nbar\n")
    full = judge("foo(x)\nbar", "foo(x)\nbar\n")
    assert full.full and full.first_line and full.saved_chars == len("foo(x)\nbar")
    first = judge("foo(x)\nbaz", "foo(x)\nbar\n")
    assert not first.full and first.first_line and first.saved_chars == len("foo(x)")
    assert judge("\n    return 1", "\n    return 1\n").full  # a suggestion starting on the next line
    block = judge("\n    return 1\n    x", "\n    return 1\n")
    assert not block.full and block.first_line and block.saved_chars == len("\n    return 1")
    assert judge("nope", "foo\n") == judge("   ", "   \n") == judge("", "x")
    assert judge("nope", "foo\n").saved_chars == 0


def test_percentiles_interpolate_and_keep_endless_waits_endless():
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 95) == pytest.approx(95.0)
    assert percentile([1, 2, math.inf], 50) == 2
    assert percentile([1, math.inf, math.inf], 50) == math.inf
    assert dist([1, math.inf, math.inf]) == {"n": 3, "p50": None, "p95": None, "p99": None}


def test_summary_counts_every_request_and_the_waits_after_pauses():
    requests = [
        req(0.0, 0.30, next_key=0.2, text="late", key=0),  # superseded
        req(0.2, 0.25, next_key=0.4, text="", key=1),  # empty
        req(0.4, 0.50, next_key=2.0, text="x = 1", source="model", pause=True, rest="x = 1\n", key=2),
        req(2.0, 2.01, next_key=2.2, text=" = 1", source="typed-through", rest=" = 1\n", key=3),
        req(2.2, 2.60, next_key=3.5, error=-32800, pause=True, key=4),  # a pause without a suggestion
        req(3.5, 3.60, text="y = 2\nz", source="model", pause=True, rest="y = 2\n", key=5),
        req(4.0, None, key=6),
    ]
    s = summarize(requests, [10.0, 20.0, 30.0])
    assert s["requests"] == 7 == sum(s["outcomes"].values())
    assert s["outcomes"] == {
        "shown": 2,
        "typed-through": 1,
        "empty": 1,
        "superseded": 1,
        "cancelled": 1,
        "error": 0,
        "timeout": 1,
    }
    assert s["shown"] == 2 and s["final_ms"]["n"] == 2 and s["final_displayed_ms"]["n"] == 3
    assert s["final_p50_ms"] == pytest.approx(100.0)
    assert s["pauses"] == 3 and s["pauses_with_suggestion"] == 2
    assert s["first_suggestion_after_pause_p50_ms"] == pytest.approx(100.0)
    assert s["after_pause_all_ms"]["p50"] == pytest.approx(100.0)
    assert s["first_token_p50_ms"] == 20.0
    assert s["usefulness"] == 0.5 and s["usefulness_first_line"] == 1.0
    assert s["chars_saved"] == len("x = 1") + len("y = 2")
    assert s["time_to_outcome_ms"]["superseded"]["p50"] == pytest.approx(300.0)


def test_sources_from_decode_records_and_typed_through():
    requests = [
        Request(0, 0, 0.0, next_key_s=0.5, answered_s=0.2, text="bcd", request_id="inline#1"),
        Request(0, 1, 0.5, next_key_s=0.9, answered_s=0.51, text="cd", request_id="inline#2"),
        Request(0, 2, 0.9, answered_s=0.95, text="zz", request_id="inline#3"),
    ]
    decodes = {"inline#1": {"requestId": "inline#1", "mode": "BLOCK", "firstTokenMs": 42.0}}
    attach_sources(requests, ["a", "b", "q"], decodes)
    assert [r.source for r in requests] == ["model", "typed-through", "cache"]
    assert requests[0].mode == "BLOCK" and requests[0].first_token_ms == 42.0
    assert [r.outcome for r in requests] == ["shown", "typed-through", "shown"]


def _side(**overrides):
    base = summarize([req(0, 0.1, text="a", source="model", pause=True, rest="a\n")], [40.0])
    return {**base, **overrides}


def _result(peer, reason=None):
    meta = {
        "command": "codegeex-lsp bench latency",
        "date": "now",
        "serve": ["serve"],
        "init_options": {},
        "server_status": {"model": "m", "format": "f"},
        "peer_command": ["/x/llama-server", "-m", "g.gguf"],
        "peer_n_cmpl": 1,
        "peer_greedy": False,
        "files": ["a.py"],
        "sessions": 1,
        "keystrokes": 1,
        "cps": 5.0,
        "seed": 0,
        "cpu_count": 2,
        "loadavg_start": (0.1, 0, 0),
        "loadavg_end": (0.2, 0, 0),
    }
    return {
        "meta": meta,
        "ours": _side(),
        "peer": peer,
        "peer_reason": reason,
        "memory": {"samples": [], "flatness": {"checked": False, "reason": "none"}},
        "requests": {"ours": [], "peer": []},
    }


def test_report_with_the_peer_missing_says_why():
    text = report.format_report(_result(None, "llama-server missing: not built"), [])
    assert "Peer: null — llama-server missing: not built." in text
    assert "| first suggestion after a pause, p50 ours / peer | ≤ 0.5 | n/a | n/a |" in text
    assert "| | ours |" in text


def test_report_compares_both_columns_against_the_targets():
    peer = _side(first_suggestion_after_pause_p50_ms=400.0, usefulness=0.0)
    text = report.format_report(_result(peer), [])
    assert "| | ours | peer |" in text
    assert "| first suggestion after a pause, p50 ours / peer | ≤ 0.5 | 0.25 (100 / 400 ms) | yes |" in text
    assert "| usefulness ours vs peer | ≥ the peer | 100.0 % vs 0.0 % | yes |" in text
    assert "| first token p50 | ≤ 50 ms | 40 | yes |" in text
    slow = report.format_report(_result(_side(first_suggestion_after_pause_p50_ms=150.0)), [])
    assert "0.67 (100 / 150 ms) | **no** |" in slow
