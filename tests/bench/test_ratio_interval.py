"""`stats.ratio_interval`: speed ratios over rounds, as `bench decode` reports them."""

from __future__ import annotations

import math

import pytest

from codegeex_lsp.bench.stats import ratio_interval, t_975


def test_t_quantiles_match_the_tables():
    assert t_975(2) == 4.303 and t_975(30) == 2.042
    assert t_975(60) == pytest.approx(2.0003, abs=1e-3)  # beyond the table: Cornish-Fisher
    assert t_975(120) == pytest.approx(1.9799, abs=1e-3)
    with pytest.raises(ValueError):
        t_975(0)


def test_interval_is_a_t_interval_on_the_logs():
    mean, low, high = ratio_interval([math.exp(0.1), math.exp(0.2), math.exp(0.3)])
    half = 4.303 * 0.1 / math.sqrt(3)  # log-mean 0.2, log-sd 0.1, 2 degrees of freedom
    assert mean == pytest.approx(math.exp(0.2))
    assert (low, high) == (pytest.approx(math.exp(0.2 - half)), pytest.approx(math.exp(0.2 + half)))


def test_opposite_ratios_average_to_one_and_one_round_has_no_interval():
    assert ratio_interval([2.0, 0.5])[0] == pytest.approx(1.0)
    assert ratio_interval([1.25]) == (1.25, None, None)
    with pytest.raises(ValueError):
        ratio_interval([1.0, 0.0])
