"""Which llama.cpp build `bench.llama_cpp` picks: the native one for this CPU, or the portable AVX2 one."""

from __future__ import annotations

import pytest

from codegeex_lsp.bench import llama_cpp


def _build(root, name: str, *, flags: str | None = None, isa: str | None = None):
    bin_dir = root / "llama.cpp" / name / "bin"
    bin_dir.mkdir(parents=True)
    for program in ("llama-server", "llama-bench", "llama-quantize"):
        (bin_dir / program).write_text("")
    if flags is not None:
        (bin_dir.parent / "cpu-flags").write_text(flags + "\n")
    if isa is not None:
        (bin_dir.parent / "isa").write_text(isa + "\n")
    return bin_dir


def test_avx2_build_is_found_by_its_marker_and_never_taken_as_native(tmp_path, monkeypatch):
    monkeypatch.delenv(llama_cpp.BIN_ENV, raising=False)
    avx2 = _build(tmp_path, "0.3.36-avx2-aaa", isa="avx2")
    with pytest.raises(llama_cpp.LlamaCppMissing, match=r"no llama\.cpp build for this host"):
        llama_cpp.bin_dir(str(tmp_path))  # the portable build has no cpu-flags: not the native one
    native = _build(tmp_path, "0.3.36-bbb", flags=llama_cpp.host_cpu_flags())
    assert llama_cpp.bin_dir(str(tmp_path)) == native
    assert llama_cpp.bin_dir(str(tmp_path), "avx2") == avx2
    assert llama_cpp.binary("llama-bench", str(tmp_path), "avx2") == avx2 / "llama-bench"
    assert str(avx2) in llama_cpp.run_env(str(tmp_path), "avx2")["LD_LIBRARY_PATH"]
    (avx2 / "llama-quantize").unlink()
    with pytest.raises(llama_cpp.LlamaCppMissing, match="CODEGEEX_LSP_LLAMA_ISA=avx2"):
        llama_cpp.binary("llama-quantize", str(tmp_path), "avx2")  # the hint for that build, not the native one


def test_missing_avx2_build_says_how_to_make_it(tmp_path):
    _build(tmp_path, "0.3.36-avx2-ccc")  # no marker: an interrupted build
    with pytest.raises(llama_cpp.LlamaCppMissing, match="CODEGEEX_LSP_LLAMA_ISA=avx2 scripts/install-llama-cpp"):
        llama_cpp.bin_dir(str(tmp_path), "avx2")
    with pytest.raises(ValueError, match=r"unknown llama\.cpp build"):
        llama_cpp.bin_dir(str(tmp_path), "avx512")
