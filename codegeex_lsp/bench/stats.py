"""Statistics every benchmark report carries: pass@1 intervals, paired tests, and the host it ran on.

A pass@1 of 40.9 on 164 tasks is 67 passes; without an interval and a paired test, "int4 42.1 vs
fp 40.9" reads like a gain when it is 13 tasks gained and 11 lost. `wilson_interval` is the 95 %
Wilson score interval (good at small n and near 0 or 1, where the normal approximation is not);
`mcnemar` is the exact McNemar test: under "the variants are equally good" each discordant task
(one passes, the other fails) is a fair coin, so the two-sided p-value is a binomial tail.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

Z_95 = 1.959963984540054
"""The standard normal quantile of 0.975: a two-sided 95 % interval."""

SIMD_FLAG_PREFIXES: tuple[str, ...] = ("sse4", "avx", "fma", "f16c", "amx", "vnni", "bmi2")
"""The /proc/cpuinfo flags that decide which kernels (ours, ggml's) a host can run."""


def wilson_interval(passed: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval for `passed` successes in `n` trials, as fractions."""
    if not 0 <= passed <= n:
        raise ValueError(f"need 0 <= passed <= n, got passed={passed} n={n}")
    if n == 0:
        return 0.0, 1.0
    p = passed / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided p-value of `k` heads in `n` fair coin flips (doubled smaller tail, capped at 1)."""
    if n == 0:
        return 1.0
    tail = min(k, n - k)
    probability = sum(math.comb(n, i) for i in range(tail + 1)) / 2**n
    return min(1.0, 2 * probability)


@dataclass(frozen=True)
class Paired:
    """Two variants on the same tasks: `a_only` tasks pass only with a, `b_only` only with b."""

    n: int
    both: int
    a_only: int
    b_only: int
    neither: int

    @property
    def p_value(self) -> float:
        """Exact McNemar (binomial on the discordant pairs), two-sided."""
        return binomial_two_sided_p(self.a_only, self.a_only + self.b_only)

    def difference_interval(self, z: float = Z_95) -> tuple[float, float, float]:
        """(a - b, low, high) in pass-rate fractions: the paired difference with its Wald interval
        (variance from the discordant counts, the interval that goes with McNemar's test). Whether
        "int4 is within 1 point of fp" needs this, not two overlapping per-variant intervals."""
        if self.n == 0:
            return 0.0, -1.0, 1.0
        diff = (self.a_only - self.b_only) / self.n
        variance = (self.a_only + self.b_only - (self.a_only - self.b_only) ** 2 / self.n) / self.n**2
        half = z * math.sqrt(max(variance, 0.0))
        return diff, diff - half, diff + half

    def to_json(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "both": self.both,
            "a_only": self.a_only,
            "b_only": self.b_only,
            "neither": self.neither,
            "p_value": self.p_value,
        }


# Student's t quantile of 0.975 for 1..30 degrees of freedom (standard tables); beyond, the
# Cornish-Fisher expansion around the normal quantile (within 0.001 there).
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
          2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
          2.045, 2.042)  # fmt: skip


def t_975(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("a t interval needs at least 2 samples")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = Z_95
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def ratio_interval(ratios: list[float]) -> tuple[float, float | None, float | None]:
    """(geometric mean, low, high) of speed ratios measured in separate rounds: a t interval on their
    logs, so a round at 2x and one at 0.5x average to 1x. One round: no interval (None, None). Why
    rounds: on a shared VM the host's speed drifts over minutes, so engines timed one after the other
    are compared round by round, each round close in time."""
    if not ratios or min(ratios) <= 0:
        raise ValueError("ratios must be positive")
    logs = [math.log(r) for r in ratios]
    mean = sum(logs) / len(logs)
    if len(logs) < 2:
        return math.exp(mean), None, None
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    half = t_975(len(logs) - 1) * sd / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def mcnemar(a: Mapping[str, bool], b: Mapping[str, bool]) -> Paired:
    """Compare two variants on the tasks both have (task id -> passed); other tasks are ignored."""
    common = sorted(a.keys() & b.keys())
    both = sum(a[t] and b[t] for t in common)
    a_only = sum(a[t] and not b[t] for t in common)
    b_only = sum(b[t] and not a[t] for t in common)
    return Paired(len(common), both, a_only, b_only, len(common) - both - a_only - b_only)


def format_rate(passed: int, n: int) -> str:
    """`40.9 [33.7, 48.6] n=164`: percent with its 95 % Wilson interval and the count."""
    if n == 0:
        return "n=0"
    low, high = wilson_interval(passed, n)
    return f"{100 * passed / n:.1f} [{100 * low:.1f}, {100 * high:.1f}] n={n}"


def format_paired(paired: Paired, a: str, b: str) -> str:
    """`fp vs int4: 13 only fp, 11 only int4 (n=164), McNemar p=0.84`."""
    return (
        f"{a} vs {b}: {paired.a_only} only {a}, {paired.b_only} only {b}, {paired.both} both, "
        f"{paired.neither} neither (n={paired.n}), exact McNemar p={paired.p_value:.3g}"
    )


def format_difference(paired: Paired, a: str, b: str) -> str:
    """`fp - int4 = +0.0 points [-1.9, +1.9]`: the paired difference with its 95 % interval."""
    diff, low, high = paired.difference_interval()
    return f"{a} - {b} = {100 * diff:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]"


def host_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """The CPU model and its SIMD flags (what decides which kernels ran), for every results file."""
    fields: dict[str, str] = {}
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor speaks for all
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = sorted(f for f in fields.get("flags", "").split() if f.startswith(SIMD_FLAG_PREFIXES))
    return {"cpu": model, "machine": platform.machine(), "simd_flags": flags}


def format_host(host: Mapping[str, object] | None) -> str:
    """One line for a report: `host: <cpu> (x86_64), flags avx avx2 ...`."""
    if not host:
        return "host: not recorded"
    recorded = host.get("simd_flags") or []
    flags = " ".join(str(flag) for flag in recorded) if isinstance(recorded, list) else str(recorded)
    return f"host: {host.get('cpu')} ({host.get('machine')}), SIMD flags: {flags or 'none recorded'}"
