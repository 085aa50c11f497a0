"""The local telemetry store: counts per day and language, several writers, the stats table."""

from __future__ import annotations

import datetime
import threading
from collections import Counter

from codegeex_lsp.telemetry import LanguageTotals, Telemetry, TelemetryStore, format_table


def test_counts_round_trip_and_add_up(tmp_path):
    store = TelemetryStore(tmp_path / "t.sqlite3")
    assert store.totals() == []
    first, second = Telemetry(store), Telemetry(store)  # two servers
    first.shown("file:///a.py", "python")
    first.shown("file:///a.py", "python")
    first.accepted("file:///a.py")
    second.shown("file:///b.rs", "rust")
    second.dismissed("file:///b.rs")
    second.dismissed(None)
    first.flush()
    second.flush()
    first.flush()  # nothing new: nothing added
    totals = {t.language: t for t in store.totals()}
    assert totals["python"] == LanguageTotals("python", 2, 1, 0)
    assert totals["python"].acceptance_rate == 0.5
    assert totals["rust"] == LanguageTotals("rust", 1, 0, 1)
    assert totals["unknown"] == LanguageTotals("unknown", 0, 0, 1)
    assert totals["unknown"].acceptance_rate is None
    assert (tmp_path / "t.sqlite3").stat().st_mode & 0o077 == 0


def test_days_window(tmp_path):
    store = TelemetryStore(tmp_path / "t.sqlite3")
    today = datetime.date(2026, 3, 10)
    store.add(Counter({("2026-03-01", "go", "shown"): 4, ("2026-03-10", "go", "shown"): 1}))
    assert store.totals(today=today)[0].shown == 5
    assert store.totals(days=7, today=today)[0].shown == 1
    store.reset()
    assert store.totals() == []


def test_concurrent_writers(tmp_path):
    store = TelemetryStore(tmp_path / "t.sqlite3")

    def write():
        for _ in range(20):
            store.add(Counter({("2026-01-01", "c", "shown"): 1}))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.totals()[0].shown == 80


def test_disabled_telemetry_writes_nothing(tmp_path):
    off = Telemetry(None)
    off.shown("u", "python")
    off.flush()
    assert list(tmp_path.iterdir()) == []


def test_table():
    text = format_table([LanguageTotals("python", 4, 1, 2), LanguageTotals("go", 0, 0, 1)])
    lines = text.splitlines()
    assert lines[0].split() == ["language", "shown", "accepted", "dismissed", "acceptance"]
    assert lines[2].split() == ["python", "4", "1", "2", "25.0%"]
    assert lines[3].split() == ["go", "0", "0", "1", "-"]
    assert lines[-1].split() == ["all", "4", "1", "3", "25.0%"]
    assert format_table([]) == "no suggestions recorded yet"
