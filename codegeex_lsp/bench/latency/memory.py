"""Resident memory over a replay: samples, the flatness check after the KV cache budget fills, the plot.

The worker keeps one prefix KV cache per document within a byte budget (256 MiB by default: about
14 documents of 1.5k positions with the default model, `engine/service.py`). While it fills, the
worker grows; after it, evictions must give the memory back (`malloc_trim`), so the worker's RSS
must stay within ±5 % of its value when the budget filled. Sessions open a new document each, so
the budget counts as full from the session that opens document `fill_docs` on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILL_DOCS = 16  # documents opened before the 256 MiB budget is surely full (~14 fit)
FLAT_TOLERANCE = 0.05


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of `pid` in MiB (None when gone or unknown)."""
    if pid is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


@dataclass
class Sample:
    t_s: float  # since the replay started
    session: int  # sessions started so far
    server_mib: float | None
    worker_mib: float | None
    peer_mib: float | None = None  # llama-server, for comparison


class Sampler:
    """Samples the server's, the worker's and the peer's RSS every `interval_s` while a replay runs."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.session = 0
        self.server_pid: int | None = None
        self.worker_pid: int | None = None
        self.peer_pid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0

    def sample(self) -> None:
        self.samples.append(
            Sample(
                round(time.monotonic() - self._t0, 2),
                self.session,
                rss_mib(self.server_pid),
                rss_mib(self.worker_pid),
                rss_mib(self.peer_pid),
            )
        )

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()


def flatness(
    samples: list[Sample], fill_docs: int = FILL_DOCS, tolerance: float = FLAT_TOLERANCE
) -> dict[str, Any]:
    """Is the worker's RSS within ±tolerance of its value once `fill_docs` documents were opened?"""
    after = [s for s in samples if s.session >= fill_docs and s.worker_mib is not None]
    if len(after) < 2:
        return {
            "checked": False,
            "reason": f"fewer than 2 samples after {fill_docs} documents",
            "fill_docs": fill_docs,
        }
    base = after[0].worker_mib
    assert base is not None
    low = min(s.worker_mib for s in after if s.worker_mib is not None)
    high = max(s.worker_mib for s in after if s.worker_mib is not None)
    return {
        "checked": True,
        "fill_docs": fill_docs,
        "samples": len(after),
        "at_fill_mib": round(base, 1),
        "min_mib": round(low, 1),
        "max_mib": round(high, 1),
        "max_deviation": round(max(high - base, base - low) / base, 4),
        "flat": high <= base * (1 + tolerance) and low >= base * (1 - tolerance),
        "tolerance": tolerance,
    }


def plot(samples: list[Sample], path: Path, fill_docs: int = FILL_DOCS) -> bool:
    """RSS over time (server, worker, both), the fill point marked; False without matplotlib or data."""
    try:
        import matplotlib
    except ImportError:
        return False
    if not samples:
        return False
    matplotlib.use("Agg")  # no display on benchmark machines
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(9, 4))
    t = [s.t_s for s in samples]
    for label, values in (
        ("server", [s.server_mib for s in samples]),
        ("worker", [s.worker_mib for s in samples]),
        ("llama-server (peer)", [s.peer_mib for s in samples]),
    ):
        if any(v is not None for v in values):
            ax.plot(t, [float("nan") if v is None else v for v in values], label=label)
    filled = next((s.t_s for s in samples if s.session >= fill_docs), None)
    if filled is not None:
        ax.axvline(filled, color="grey", linestyle="--", linewidth=1, label=f"{fill_docs} documents opened")
    ax.set_xlabel("s since the replay started")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("resident memory during the replay")
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
