"""The unbiased pass@k estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on Code").

For one task with n samples of which c pass, pass@k = 1 - C(n-c, k) / C(n, k): the chance that k
samples drawn without replacement include a passing one. The binomials overflow floats long before
n = 200, so the ratio is computed as the product prod_{i=n-c+1}^{n} (1 - k / i), as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

KS: tuple[int, ...] = (1, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Estimated pass@k for one task from `c` passing samples out of `n`."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def ks_for(n: int, ks: Iterable[int] = KS) -> tuple[int, ...]:
    """The k values that `n` samples per task can estimate."""
    return tuple(k for k in ks if k <= n)


def mean_pass_at_k(counts: Sequence[tuple[int, int]], ks: Iterable[int] = KS) -> dict[str, float]:
    """`{"pass@k": mean over tasks}` for each k allowed by the smallest n among `counts` (n, c)."""
    if not counts:
        return {}
    n_min = min(n for n, _ in counts)
    return {f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in ks_for(n_min, ks)}
