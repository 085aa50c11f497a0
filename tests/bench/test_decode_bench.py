"""`bench decode` on the tiny model: ours int4 and bf16 rows, the JSON keys, bytes per token."""

from __future__ import annotations

import argparse
import math
import os

import pytest

from codegeex_lsp.bench import decode


@pytest.fixture(scope="module")
def bench(tiny_model_factory, tmp_path_factory):
    args = argparse.Namespace(
        model=str(tiny_model_factory("qwen2")), threads=1, tokens=12, prefill_tokens=40, repeat=2, rounds=2,
        cache_dir=str(tmp_path_factory.mktemp("cache")), no_bf16=False, no_llama_cpp=True, json=True, isa="native", depth=0,
    )  # fmt: skip
    return decode.run(args, log=lambda message: None)


def test_json_has_the_documented_keys(bench):
    summary = bench.summary()
    for key in ("ours_int4_tok_s", "llama_cpp_tok_s", "llama_cpp_q4_0_tok_s", "ours_int4_prefill_tok_s",
                "llama_cpp_prefill_tok_s", "cpu_flags"):  # fmt: skip
        assert key in summary
    assert summary["ours_int4_tok_s"] > 0 and summary["ours_int4_prefill_tok_s"] > 0
    assert summary["llama_cpp_tok_s"] is None  # --no-llama-cpp: absent, never invented
    assert summary["ours_int4_op_by_op_tok_s"] > 0
    per_round = [r["ours_int4_tok_s"] / r["ours_int4_op_by_op_tok_s"] for r in map(decode.rates, bench.rounds)]
    assert summary["fused_decode_speedup"] == pytest.approx(math.prod(per_round) ** (1 / len(per_round)))


def test_int4_is_timed_fused_and_op_by_op_on_the_same_model(bench):
    fused, op_by_op = bench.row("ours int4"), bench.row(decode.OP_BY_OP_ROW)
    assert fused.weight_bytes_per_token == op_by_op.weight_bytes_per_token
    assert fused.decode_sd is not None and fused.decode_sd >= 0  # mean and spread of the timed runs
    assert os.environ.get("CODEGEEX_LSP_FUSED_DECODE") is None  # the switch is put back


def test_int4_reads_fewer_weight_bytes_than_bf16(bench):
    int4, bf16 = bench.row("ours int4"), bench.row("ours bf16")
    assert 0 < int4.weight_bytes_per_token < bf16.weight_bytes_per_token
    assert int4.decode_gb_s == pytest.approx(int4.decode_tok_s * int4.weight_bytes_per_token / 1e9)


def test_table_names_every_engine_and_the_bandwidth(bench):
    table = decode.format_table(bench)
    assert "ours int4" in table and "ours bf16" in table and "GB/s" in table
    assert decode.OP_BY_OP_ROW in table and " ± " in table and "fused_decode_speedup" in table


def test_prefill_prompt_is_exactly_n_tokens(tiny_model_factory):
    from codegeex_lsp.engine.load import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_factory("qwen2"), False)
    ids = decode.prefill_prompt_ids(tokenizer, 700)
    assert len(ids) == 700 and ids == decode.prefill_prompt_ids(tokenizer, 700)


def test_isa_avx2_refuses_a_torch_that_is_not_held_to_avx2(monkeypatch):
    from codegeex_lsp.errors import InputError

    for key in decode.AVX2_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(InputError, match="ATEN_CPU_CAPABILITY=avx2"):
        decode.hold_to_isa("avx2")


def test_isa_avx2_runs_ours_on_the_avx2_kernels(tiny_model_factory, tmp_path):
    """A fresh process with the environment `--isa avx2` asks for: every engine of ours on AVX2."""
    import json
    import subprocess
    import sys

    script = (
        "import argparse, json, sys\n"
        "from codegeex_lsp.bench import decode\n"
        "args = argparse.Namespace(model=sys.argv[1], threads=1, tokens=6, prefill_tokens=20, repeat=1, rounds=1,\n"
        "    cache_dir=sys.argv[2], no_bf16=True, no_llama_cpp=True, json=True, isa='avx2', depth=0)\n"
        "print(json.dumps(decode.run(args, log=lambda m: None).summary()))\n"
    )
    env = {**os.environ, **decode.AVX2_ENV}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tiny_model_factory("qwen2")), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["isa"] == "avx2" and summary["kernel_path"] == "cpp/avx2"
    assert summary["ours_int4_tok_s"] > 0


def test_depth_times_prefill_and_decode_after_a_cached_context(tiny_model_factory, tmp_path):
    args = argparse.Namespace(
        model=str(tiny_model_factory("qwen2")), threads=1, tokens=8, prefill_tokens=24, repeat=1, rounds=1, depth=60,
        cache_dir=str(tmp_path), no_bf16=True, no_llama_cpp=True, json=True, isa="native",
    )  # fmt: skip
    bench = decode.run(args, log=lambda message: None)
    summary = bench.summary()
    assert summary["depth"] == 60
    assert summary["ours_int4_tok_s"] > 0 and summary["ours_int4_prefill_tok_s"] > 0
    assert "after 60 cached tokens" in decode.format_table(bench)


def test_llama_bench_gets_the_depth_and_its_figures_are_read_back(monkeypatch, tmp_path):
    import json
    import subprocess

    from codegeex_lsp.bench import llama_cpp

    seen: list[list[str]] = []
    entries = [
        {"n_prompt": 512, "n_gen": 0, "n_depth": 1536, "avg_ts": 250.0, "stddev_ts": 3.0, "cpu_info": "cpu"},
        {"n_prompt": 0, "n_gen": 128, "n_depth": 1536, "avg_ts": 40.0, "stddev_ts": 1.0, "cpu_info": "cpu"},
    ]

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps(entries), stderr="")

    monkeypatch.setattr(llama_cpp, "binary", lambda name, cache, isa="native": tmp_path / name)
    monkeypatch.setattr(decode, "gguf_weight_bytes", lambda path: 1000)
    monkeypatch.setattr(decode.subprocess, "run", fake_run)
    row = decode.measure_llama_cpp(tmp_path / "m.gguf", "llama.cpp Q4_0", 2, 512, 128, 3, None, lambda m: None, 1536)
    cmd = seen[0]
    assert cmd[cmd.index("-d") + 1] == "1536" and cmd[cmd.index("-p") + 1] == "512"
    assert (row.decode_tok_s, row.prefill_tok_s) == (40.0, 250.0)


def test_rounds_give_each_engine_its_mean_and_the_ratios_an_interval(bench):
    assert len(bench.rounds) == 2
    for row in bench.rows:
        per_round = [r.decode_tok_s for rows in bench.rounds for r in rows if r.name == row.name]
        assert len(per_round) == 2 and row.decode_tok_s == pytest.approx(sum(per_round) / 2)
    summary = bench.summary()
    low, high = summary["fused_decode_speedup_ci95"]
    assert low <= summary["fused_decode_speedup"] <= high
    assert summary["decode_ratio_vs_llama_cpp_q4_0_ci95"] is None  # no llama.cpp rows: nothing invented
    assert "over 2 rounds" in decode.format_table(bench)
