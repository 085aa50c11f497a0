"""pass@k against hand-computed values and the combinatorial definition 1 - C(n-c, k) / C(n, k)."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest

from codegeex_lsp.bench.humaneval_x.metric import KS, ks_for, mean_pass_at_k, pass_at_k

EXACT = 1e-12


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (2, 1, 1, 0.5),
        (10, 3, 1, 0.3),
        (5, 1, 2, 0.4),  # 1 - C(4,2)/C(5,2) = 1 - 6/10
        (10, 3, 10, 1.0),  # fewer failures than k: some draw must pass
        (10, 0, 10, 0.0),
        (200, 0, 100, 0.0),
        (200, 1, 100, 0.5),  # 1 - C(199,100)/C(200,100) = 1 - 100/200
        (200, 200, 1, 1.0),
    ],
)
def test_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=EXACT)


def _definition(n: int, c: int, k: int) -> float:
    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


@pytest.mark.parametrize("n", range(1, 201))
def test_matches_definition(n: int) -> None:
    for c in sorted({0, 1, 2, n // 3, n // 2, n - 2, n - 1, n} & set(range(n + 1))):
        for k in ks_for(n, (1, 2, 5, *KS, 150, 200)):
            assert pass_at_k(n, c, k) == pytest.approx(_definition(n, c, k), abs=EXACT), (n, c, k)


@pytest.mark.parametrize("n", [1, 7, 200])
def test_pass_at_1_is_fraction_passed(n: int) -> None:
    for c in range(n + 1):
        assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=EXACT)


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_uses_only_ks_every_task_allows() -> None:
    assert ks_for(1) == (1,)
    assert ks_for(20) == (1, 10)
    assert ks_for(200) == (1, 10, 100)
    result = mean_pass_at_k([(20, 10), (10, 0)])
    assert set(result) == {"pass@1", "pass@10"}
    assert result["pass@1"] == pytest.approx((0.5 + 0.0) / 2)
    assert result["pass@10"] == pytest.approx((_definition(20, 10, 10) + 0.0) / 2)
    assert mean_pass_at_k([]) == {}
