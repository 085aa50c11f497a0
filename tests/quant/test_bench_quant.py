"""`bench quant` on the tiny model: perplexity rows per mode, held-out texts disjoint from calibration."""

from __future__ import annotations

import math

from codegeex_lsp.bench import quant as bench_quant
from codegeex_lsp.quant.calibration import stdlib_calibration_sources


def test_held_out_texts_are_not_calibration_texts():
    calibration = stdlib_calibration_sources(n_texts=bench_quant.CALIBRATION_TEXTS)
    held_out = bench_quant.held_out_texts(3, max_chars=800)
    assert len(held_out) == 3
    # Whatever the snippet length, no held-out snippet comes from a calibration file.
    assert not any(snippet in text for snippet in held_out for _path, text in calibration)
    assert len({path for path, _ in calibration}) == bench_quant.CALIBRATION_TEXTS


def test_bench_quant_rows(tiny_glm_dir):
    modes = ["asym:32", "rowwise:0", "gptq:32", "awq:32", "gptq-act:32"]
    result = bench_quant.run(str(tiny_glm_dir), modes, 2, 64, 1, lambda _m: None)
    rows = result["rows"]
    assert [r["mode"] for r in rows] == ["fp32", "asym", "rowwise", "gptq", "awq", "gptq-act"]
    assert rows[5]["perplexity"] != rows[3]["perplexity"]  # act order really reorders
    assert rows[0]["delta_pct"] == 0.0
    assert all(math.isfinite(r["perplexity"]) and r["perplexity"] > 1 for r in rows)
    assert rows[1]["perplexity"] != rows[0]["perplexity"]  # the int4 model really ran
    assert rows[3]["perplexity"] != rows[1]["perplexity"]  # calibrated modes are not plain asym
    assert "| asym | 32 |" in bench_quant.format_table(result)
    # The FIM column: the tiny model has a FIM format, so every row scores held-out FIM middles.
    assert result["fim_prompts"] == 2
    assert rows[0]["fim_delta_pct"] == 0.0
    assert all(math.isfinite(r["fim_perplexity"]) and r["fim_perplexity"] > 1 for r in rows)
    assert rows[1]["fim_perplexity"] != rows[0]["fim_perplexity"]


def test_engine_recipe_and_its_residual_planes():
    from codegeex_lsp.engine import load

    assert bench_quant.ENGINE_INT4 in bench_quant.DEFAULT_MODES
    assert load.INT4_RECIPE.startswith(f"{load.INT4_MODE}-act-g{load.INT4_GROUP_SIZE}")
    wanted = load.int4_residual(24)
    planes = [i for i in range(24) if wanted(f"layers.{i}.feed_forward.w_gate_up")]
    assert planes == [0, 1, 2, 3, 4, 5, 18, 19, 20, 21, 22, 23]
    assert wanted("tok_embeddings") and not wanted("output") and not wanted("layers.0.feed_forward.w_down")
    assert [i for i in range(2) if load.int4_residual(2)(f"layers.{i}.feed_forward.w_gate_up")] == [0, 1]
    # held-out texts start after the stdlib files the corpus took its Python files from
    from codegeex_lsp.quant.calibration import corpus_files

    first = {text for _path, text in stdlib_calibration_sources(n_texts=bench_quant.CALIBRATION_TEXTS)}
    assert all(f.text in first for f in corpus_files() if f.language == "python")
