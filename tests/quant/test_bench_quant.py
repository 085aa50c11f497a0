"""`bench quant` on the tiny model: perplexity rows per mode, held-out texts disjoint from calibration."""

from __future__ import annotations

import math

from codegeex_lsp.bench import quant as bench_quant
from codegeex_lsp.quant.calibration import stdlib_calibration_texts


def test_held_out_texts_are_not_calibration_texts():
    calibration = set(stdlib_calibration_texts(n_texts=bench_quant.CALIBRATION_TEXTS, max_chars=800))
    held_out = bench_quant.held_out_texts(3, max_chars=800)
    assert len(held_out) == 3
    assert not calibration.intersection(held_out)


def test_bench_quant_rows(tiny_glm_dir):
    result = bench_quant.run(str(tiny_glm_dir), ["asym:32", "rowwise:0"], 2, 64, 1, lambda _m: None)
    rows = result["rows"]
    assert [r["mode"] for r in rows] == ["fp32", "asym", "rowwise"]
    assert rows[0]["delta_pct"] == 0.0
    assert all(math.isfinite(r["perplexity"]) and r["perplexity"] > 1 for r in rows)
    assert rows[1]["perplexity"] != rows[0]["perplexity"]  # the int4 model really ran
    assert "| asym | 32 |" in bench_quant.format_table(result)
