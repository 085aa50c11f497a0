"""Intervals and paired tests against textbook values; the host line from a cpuinfo file."""

from __future__ import annotations

import math

import pytest

from codegeex_lsp.bench.stats import (
    Paired,
    binomial_two_sided_p,
    format_host,
    format_rate,
    host_info,
    mcnemar,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("passed", "n", "low", "high"),
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (67, 164, 0.3362, 0.4850)],
)
def test_wilson_interval_matches_reference_values(passed, n, low, high):
    got = wilson_interval(passed, n)
    assert got == pytest.approx((low, high), abs=5e-4)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_exact_mcnemar_is_a_binomial_tail():
    assert binomial_two_sided_p(0, 5) == pytest.approx(2 / 32)
    assert binomial_two_sided_p(13, 24) == pytest.approx(0.8388, abs=1e-4)
    assert binomial_two_sided_p(0, 0) == 1.0
    assert binomial_two_sided_p(3, 6) == 1.0  # capped, never above 1


def test_mcnemar_counts_only_shared_tasks():
    a = {"t1": True, "t2": True, "t3": False, "t4": False, "only-a": True}
    b = {"t1": True, "t2": False, "t3": True, "t4": False, "only-b": False}
    paired = mcnemar(a, b)
    assert (paired.n, paired.both, paired.a_only, paired.b_only, paired.neither) == (4, 1, 1, 1, 1)
    assert paired.p_value == 1.0
    assert mcnemar({str(i): True for i in range(8)}, {str(i): False for i in range(8)}).p_value == pytest.approx(
        2 / 256
    )


def test_format_rate_gives_percent_interval_and_n():
    assert format_rate(67, 164) == "40.9 [33.6, 48.5] n=164"
    assert format_rate(0, 0) == "n=0"


def test_host_info_reads_model_and_simd_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma amx_tile avx512f\n\n"
        "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n"
    )
    host = host_info(cpuinfo)
    assert host["cpu"] == "Test CPU 9000"
    assert host["simd_flags"] == ["amx_tile", "avx", "avx2", "avx512f", "fma", "sse4_2"]
    assert "amx_tile avx avx2" in format_host(host)
    assert format_host(None) == "host: not recorded"


def test_paired_difference_interval_uses_the_discordant_counts():
    paired = Paired(n=100, both=40, a_only=10, b_only=4, neither=46)
    diff, low, high = paired.difference_interval()
    half = 1.959963984540054 * math.sqrt(14 - 36 / 100) / 100
    assert (diff, low, high) == pytest.approx((0.06, 0.06 - half, 0.06 + half))
    assert Paired(n=50, both=20, a_only=0, b_only=0, neither=30).difference_interval() == (0.0, 0.0, 0.0)
