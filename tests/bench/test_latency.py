"""`bench latency`: the corpus, the typing model, and one short replay through a real `serve`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from codegeex_lsp.bench.latency import corpus, run, typist
from codegeex_lsp.bench.latency.memory import Sample, flatness


def test_the_corpus_is_several_languages_with_their_license_notices():
    files = corpus.packaged_files()
    assert {corpus.language_id(p) for p in files} >= {"python", "go", "c", "javascript"}
    readme = (corpus.CORPUS_DIR / "README.md").read_text()
    for path in files:
        row = next(line for line in readme.splitlines() if f"`{path.name}`" in line)
        notice = row.split("`")[-2]
        assert notice.startswith("LICENSE-") and (corpus.CORPUS_DIR / notice).stat().st_size > 500
        assert corpus.MIN_BYTES <= path.stat().st_size <= corpus.MAX_BYTES


def test_split_keystrokes_types_characters_and_auto_indents_lines():
    keys = typist.split_keystrokes("if x:\n    return 1\nend")
    assert keys[:5] == ["i", "f", " ", "x", ":"]
    assert "\n    " in keys and "\n" in keys
    assert "".join(keys) == "if x:\n    return 1\nend"
    assert typist.split_keystrokes("    a") == ["    ", "a"]


def test_schedule_pauses_after_line_breaks_and_at_the_end():
    keys = typist.split_keystrokes("ab\n    cd")
    timed = typist.schedule(keys, random.Random(1), cps=5.0)
    times = [k.at_s for k in timed]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[3] - times[2] >= typist.LINE_PAUSE_S + typist.MIN_GAP_S  # after "\n    "
    assert [k.pause_after for k in timed] == [False, False, True, False, True]


def test_schedule_is_fixed_by_the_seed():
    keys = typist.split_keystrokes("x = f(a, b)\ny = 2")
    assert typist.schedule(keys, random.Random(7)) == typist.schedule(keys, random.Random(7))
    assert typist.schedule(keys, random.Random(7)) != typist.schedule(keys, random.Random(8))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sessions_retype_the_cut_lines(seed):
    files = corpus.packaged_files()
    sessions = typist.make_sessions(files, 200, seed)
    assert sum(len(s.keys) for s in sessions) == 200
    for session in sessions:
        assert len(session.keys) <= typist.MAX_KEYS_PER_SESSION
        lines = session.text.splitlines(keepends=True)
        before = "".join(lines[: session.line])
        typed = "".join(k.text for k in session.keys)
        original = Path(session.path).read_text(encoding="utf-8", errors="replace")
        assert original.startswith(before + typed)  # typing the keys restores the cut lines
        assert session.text[len(before)] == "\n" and original.endswith(session.text[len(before) + 1 :])
        assert typed + session.rest_after(len(session.keys) - 1) == session.region + "\n"
        assert session.rest_after(0) == session.region[len(session.keys[0].text) :] + "\n"


def test_sessions_meet_new_lines_as_well_as_mid_line_cursors():
    sessions = typist.make_sessions(corpus.packaged_files(), 600, 0)
    keys = [k for s in sessions for k in s.keys]
    breaks = sum(k.text.startswith("\n") for k in keys)
    assert 0 < breaks < len(keys) / 5  # a line break per line, characters in between


def test_cursor_advances_in_utf16_units():
    assert typist.advance(3, 4, "ab") == (3, 6)
    assert typist.advance(3, 4, "😀") == (3, 6)
    assert typist.advance(3, 4, "\n    ") == (4, 4)


def test_worker_flatness_after_the_budget_fills():
    samples = [Sample(float(i), i, 100.0, w) for i, w in enumerate([500, 700, 900, 1000, 1020, 990, 1040])]
    flat = flatness(samples, fill_docs=3)
    assert flat["checked"] and flat["flat"] and flat["at_fill_mib"] == 1000
    grown = [*samples, Sample(9.0, 9, 100.0, 1100.0)]
    assert flatness(grown, fill_docs=3)["flat"] is False
    assert flatness(samples, fill_docs=50)["checked"] is False


def test_serve_is_run_with_its_defaults_unless_asked():
    args = run.parser().parse_args([])
    assert run.serve_command(args)[3:] == ["serve"]
    assert run.init_options(args) == {}
    args = run.parser().parse_args(["--quant", "int4", "--threads", "2", "--debounce-ms", "0"])
    assert run.serve_command(args)[3:] == ["serve", "--quant", "int4", "--threads", "2"]
    assert run.init_options(args)["debounce"] == {"minMs": 0, "maxMs": 0, "initialMs": 0}


def test_short_replay_through_a_real_server(tiny_model_factory, tmp_path):
    model = tiny_model_factory("qwen2")
    out = tmp_path / "report"
    argv = [
        *("--model", str(model), "--dtype", "float32", "--quant", "none", "--threads", "1", "--in-process"),
        *("--keystrokes", "24", "--session-keys", "12", "--tail-s", "2", "--debounce-ms", "0"),
        *("--no-peer", "--memory-interval-s", "0.5", "--out", str(out), "--json-out", str(out / "l.json")),
    ]
    assert run.main(argv) == 0
    result = json.loads((out / "l.json").read_text())
    assert result["peer"] is None and "--no-peer" in result["peer_reason"]
    ours = result["ours"]
    for key in ("first_token_p50_ms", "first_suggestion_after_pause_p50_ms", "final_p50_ms", "final_p95_ms"):
        assert key in ours
    assert ours["requests"] == 24 == sum(ours["outcomes"].values())
    assert ours["shown"] == ours["outcomes"]["shown"] > 0  # the tiny model always says something
    assert ours["first_token_ms"]["n"] > 0 and ours["final_ms"]["n"] == ours["shown"]
    assert ours["pauses"] >= 2  # at least each session's end
    assert ours["usefulness"] is not None and 0 <= ours["usefulness"] <= ours["usefulness_first_line"] <= 1
    rows = result["requests"]["ours"]
    assert len(rows) == 24 and all(r["latency_ms"] is not None for r in rows if r["outcome"] != "timeout")
    assert any(r["source"] == "model" and r["mode"] in ("LINE", "BLOCK") for r in rows)
    assert result["meta"]["serve"] == [
        "serve",
        "--model",
        str(model),
        "--quant",
        "none",
        "--dtype",
        "float32",
        "--threads",
        "1",
        "--in-process",
    ]
    assert len(result["memory"]["samples"]) >= 2 and result["memory"]["samples"][0]["server_mib"] > 0
    report = (out / "latency.md").read_text()
    assert "Peer: null — not run (--no-peer)" in report and "| first token p50 |" in report
    assert (out / "latency.png").stat().st_size > 0 and (out / "memory.png").stat().st_size > 0
