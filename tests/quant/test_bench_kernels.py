"""`codegeex-lsp bench kernels` runs end to end on one small shape and reports what it promises."""

from __future__ import annotations

import json

import pytest

from codegeex_lsp.bench import ggml_gemv
from codegeex_lsp.bench import kernels as bench
from codegeex_lsp.quant import ops


@pytest.mark.usefixtures("compiled_kernels")
def test_bench_kernels_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--json", "--threads", "1", "--repeat", "2", "--shapes", "wo", "--no-bnb", "--no-llama-cpp"]
    argv += ["--rows", "2"]
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    (shape,) = report["shapes"]
    assert (shape["name"], shape["n"], shape["k"]) == ("wo", 896, 896)
    assert shape["ours_us"] > 0 and shape["ours_gbps"] > 0 and report["env"]["probe_gbps"] > 0
    assert set(shape["others_us"]) == {"torch_int4", "fp32", "bf16"}
    assert report["env"]["llama_cpp"] == "skipped" and shape["notes"] == {}
    assert report["env"]["ours_cpu_path"] == ops.cpu_path() == ops.supported_cpu_paths()[-1]
    errors = report["quant_error"]["wo"]
    assert set(errors) == {"sym", "asym", "rowwise", "awq", "gptq", "asym+kernel"}
    assert errors["awq"] < errors["asym"] < errors["rowwise"]  # outlier channels: AWQ helps


@pytest.mark.usefixtures("compiled_kernels")
@pytest.mark.skipif(ggml_gemv.unavailable_reason() is not None, reason=f"{ggml_gemv.unavailable_reason()}")
def test_bench_kernels_times_llama_cpp(capsys: pytest.CaptureFixture[str]) -> None:
    """Q4_0 on both shapes; Q4_K (256-element super-blocks) only where K = 4864, n/a where K = 896."""
    argv = ["--json", "--threads", "2", "--repeat", "2", "--shapes", "wo,w_down", "--no-bnb", "--no-errors"]
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert "llama-cpp-python" in report["env"]["llama_cpp"]
    wo, down = report["shapes"]
    assert set(wo["others_us"]) == {"torch_int4", "fp32", "bf16", "llama_cpp_q4_0"}
    assert set(down["others_us"]) == {"torch_int4", "fp32", "bf16", "llama_cpp_q4_0", "llama_cpp_q4_k"}
    assert wo["notes"]["llama_cpp_q4_k"] == "n/a (q4_k needs in_features divisible by 256, got K=896)"
    for shape in (wo, down):
        assert shape["notes"]["llama_cpp_q4_0"] in {"CPU_REPACK", "CPU"}
        assert shape["others_us"]["llama_cpp_q4_0"] > 0 and shape["ours_vs"]["llama_cpp_q4_0"] > 0


def test_bench_kernels_table_shows_llama_cpp_na(capsys: pytest.CaptureFixture[str]) -> None:
    if ops.extension() is None or ggml_gemv.unavailable_reason() is not None:
        pytest.skip("needs _kernels and llama_cpp")
    assert bench.main(["--threads", "1", "--repeat", "1", "--shapes", "wo", "--no-bnb", "--no-errors"]) == 0
    out = capsys.readouterr().out
    assert "llama_cpp_q4_0 us" in out and "llama_cpp_q4_k us" in out and " n/a " in out
    assert "llama_cpp_q4_k n/a on wo (q4_k needs in_features divisible by 256, got K=896)" in out


@pytest.mark.usefixtures("compiled_kernels")
def test_bench_kernels_without_llama_cpp_reports_why(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No llama_cpp: the reason goes in env and no llama.cpp entry appears; a ggml failure on one shape
    becomes an "n/a (reason)" note, never a crash."""
    argv = ["--json", "--threads", "1", "--repeat", "1", "--shapes", "wo", "--no-bnb", "--no-errors"]
    monkeypatch.setattr(ggml_gemv, "unavailable_reason", lambda: "llama_cpp is not installed")
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["env"]["llama_cpp"] == "llama_cpp is not installed"
    assert set(report["shapes"][0]["others_us"]) == {"torch_int4", "fp32", "bf16"}

    def broken(*args: object, **kwargs: object) -> None:
        raise ggml_gemv.GgmlUnavailable("libggml-cpu has no ggml_mul_mat")

    monkeypatch.setattr(ggml_gemv, "unavailable_reason", lambda: None)
    monkeypatch.setattr(ggml_gemv, "describe", lambda: "llama-cpp-python (test)")
    monkeypatch.setattr(ggml_gemv, "quantized_bytes", lambda *a: 1)
    monkeypatch.setattr(ggml_gemv, "GgmlGemv", broken)
    assert bench.main(argv) == 0
    (shape,) = json.loads(capsys.readouterr().out)["shapes"]
    assert set(shape["others_us"]) == {"torch_int4", "fp32", "bf16"}
    assert shape["notes"]["llama_cpp_q4_0"] == "n/a (libggml-cpu has no ggml_mul_mat)"


@pytest.mark.usefixtures("compiled_kernels")
def test_bench_kernels_times_each_cpu_path(capsys: pytest.CaptureFixture[str]) -> None:
    """--cpu-path ref makes the scalar path ours; --compare-paths adds every other SIMD path."""
    argv = ["--json", "--threads", "1", "--repeat", "1", "--shapes", "wo", "--no-bnb", "--no-llama-cpp"]
    before = ops.cpu_path()
    try:
        assert bench.main([*argv, "--no-errors", "--cpu-path", "ref", "--compare-paths"]) == 0
        report = json.loads(capsys.readouterr().out)
    finally:
        ops.set_cpu_path(before)
    assert report["env"]["ours_cpu_path"] == "ref"
    simd = [p for p in ops.supported_cpu_paths() if p != "ref"]
    (shape,) = report["shapes"]
    assert set(shape["others_us"]) == {"torch_int4", "fp32", "bf16", *(f"ours_{p}" for p in simd)}
    assert all(shape["others_us"][f"ours_{p}"] > 0 for p in simd)


def test_bench_kernels_rejects_unknown_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    if ops.extension() is None:
        assert bench.main(["--shapes", "wo"]) == 1
    else:
        assert bench.main(["--shapes", "lm_tail"]) == 2
        assert "unknown shapes" in capsys.readouterr().err
