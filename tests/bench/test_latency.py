"""`bench latency`: the keystroke script, the statistics, and one short replay through a real server."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from codegeex_lsp.bench import latency


def test_split_keystrokes_types_characters_and_auto_indents_lines():
    keys = latency.split_keystrokes("if x:\n    return 1\nend")
    assert keys[:5] == ["i", "f", " ", "x", ":"]
    assert "\n    " in keys and "\n" in keys
    assert "".join(keys) == "if x:\n    return 1\nend"
    assert latency.split_keystrokes("    a") == ["    ", "a"]


def test_schedule_is_increasing_and_pauses_after_a_line_break():
    keys = latency.split_keystrokes("ab\n    cd")
    timed = latency.schedule(keys, random.Random(1), cps=5.0)
    times = [k.at_s for k in timed]
    assert times == sorted(times) and len(set(times)) == len(times)
    after_break = times[3] - times[2]
    assert after_break >= latency.LINE_PAUSE_S + latency.MIN_GAP_S


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sessions_retype_the_cut_lines(seed):
    files = latency.default_files()
    assert {p.suffix for p in files} >= {".py", ".js", ".ts", ".go", ".rs", ".java", ".c"}
    sessions = latency.make_sessions(files, 200, seed, cps=5.0)
    assert sum(len(s.keys) for s in sessions) == 200
    for session in sessions:
        assert len(session.keys) <= latency.MAX_KEYS_PER_SESSION
        lines = session.text.splitlines(keepends=True)
        before = "".join(lines[: session.line])
        typed = "".join(k.text for k in session.keys)
        original = Path(session.path).read_text(encoding="utf-8", errors="replace")
        assert original.startswith(before + typed)  # typing the keys restores the cut lines
        assert session.text[len(before)] == "\n" and original.endswith(session.text[len(before) + 1 :])


def test_cursor_advances_in_utf16_units():
    assert latency._advance(3, 4, "ab") == (3, 6)
    assert latency._advance(3, 4, "😀") == (3, 6)
    assert latency._advance(3, 4, "\n    ") == (4, 4)


def test_percentile_interpolates():
    assert latency.percentile([], 50) is None
    assert latency.percentile([5.0], 99) == 5.0
    assert latency.percentile([1, 2, 3, 4], 50) == 2.5
    assert latency.percentile(list(range(101)), 95) == pytest.approx(95.0)


def test_inline_completion_outcomes():
    assert latency._outcome({"result": {"items": [{"insertText": "abc"}]}}) == ("suggestion", 3)
    assert latency._outcome({"result": []}) == ("empty", 0)
    assert latency._outcome({"error": {"code": -32800}}) == ("cancelled", 0)
    assert latency._outcome({"error": {"code": -32603}}) == ("error", 0)


def test_short_replay_through_a_real_server(tiny_model_factory, tmp_path):
    model = tiny_model_factory("qwen2")
    out = tmp_path / "report"
    argv = [
        *("--model", str(model), "--dtype", "float32", "--threads", "1", "--in-process"),
        *("--keystrokes", "14", "--configs", "full,off", "--tail-s", "2", "--cps", "8"),
        *("--out", str(out), "--json-out", str(out / "latency.json"), "--debounce-ms", "0"),
    ]
    assert latency.main(argv) == 0
    report = (out / "latency.md").read_text()
    assert "| full | on | on |" in report and "| off | off | off |" in report
    assert "| both | off / full |" in report
    result = json.loads((out / "latency.json").read_text())
    for name in ("full", "off"):
        summary = result["summaries"][name]
        assert summary["requests"] == 14
        assert summary["decodes"] > 0
        assert sum(summary["outcomes"].values()) == 14
    assert result["summaries"]["off"]["reused_share"] == 0
    assert (out / "latency.png").stat().st_size > 0
