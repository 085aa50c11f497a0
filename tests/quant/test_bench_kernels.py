"""`codegeex-lsp bench kernels` runs end to end on one small shape and reports what it promises."""

from __future__ import annotations

import json

import pytest

from codegeex_lsp.bench import kernels as bench
from codegeex_lsp.quant import ops


@pytest.mark.skipif(ops.extension() is None, reason=f"_kernels not built: {ops.extension_error()}")
def test_bench_kernels_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--json", "--threads", "1", "--repeat", "2", "--shapes", "wo", "--no-bnb", "--rows", "2"]
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    (shape,) = report["shapes"]
    assert (shape["name"], shape["n"], shape["k"]) == ("wo", 896, 896)
    assert shape["ours_us"] > 0 and shape["ours_gbps"] > 0 and report["env"]["probe_gbps"] > 0
    assert set(shape["others_us"]) == {"torch_int4", "fp32", "bf16"}
    errors = report["quant_error"]["wo"]
    assert set(errors) == {"sym", "asym", "rowwise", "awq", "gptq", "asym+kernel"}
    assert errors["awq"] < errors["asym"] < errors["rowwise"]  # outlier channels: AWQ helps


def test_bench_kernels_rejects_unknown_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    if ops.extension() is None:
        assert bench.main(["--shapes", "wo"]) == 1
    else:
        assert bench.main(["--shapes", "lm_tail"]) == 2
        assert "unknown shapes" in capsys.readouterr().err
