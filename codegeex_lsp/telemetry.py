"""Local telemetry: suggestions shown, accepted and dismissed per language, kept on this machine only.

Nothing is ever sent anywhere. Each language server counts in memory (`Telemetry`) and adds its
counts to a SQLite file in the state dir (`config.state_dir()`) every `FLUSH_INTERVAL_S` and when it
exits; several servers can do that at once (SQLite serializes the writers). Rows are per day and
language, so `codegeex-lsp stats --days 7` can look back a week. "Shown" counts new suggestions
only: the rest of one the user is typing through is the same suggestion.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from codegeex_lsp.config import state_dir

log = logging.getLogger(__name__)

FILE_NAME = "telemetry.sqlite3"
FLUSH_INTERVAL_S = 30.0
EVENTS = ("shown", "accepted", "dismissed")
UNKNOWN_LANGUAGE = "unknown"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counts (
    day TEXT NOT NULL,
    language TEXT NOT NULL,
    shown INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0,
    dismissed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, language)
)
"""


@dataclass(frozen=True)
class LanguageTotals:
    language: str
    shown: int
    accepted: int
    dismissed: int

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted over shown (None before anything was shown)."""
        return self.accepted / self.shown if self.shown else None


def default_path() -> Path:
    return state_dir() / FILE_NAME


class TelemetryStore:
    """The SQLite file. Every call opens its own connection, so any thread may call it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10.0)
        conn.execute(_SCHEMA)
        with contextlib.suppress(OSError):
            self.path.chmod(0o600)
        return conn

    def add(self, counts: Counter[tuple[str, str, str]]) -> None:
        """Add `counts` keyed by (day, language, event) in one transaction."""
        rows: dict[tuple[str, str], dict[str, int]] = {}
        for (day, language, event), n in counts.items():
            rows.setdefault((day, language), dict.fromkeys(EVENTS, 0))[event] += n
        if not rows:
            return
        conn = self._connect()
        try:
            with conn:
                conn.executemany(
                    "INSERT INTO counts (day, language, shown, accepted, dismissed) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (day, language) DO UPDATE SET shown = shown + excluded.shown, "
                    "accepted = accepted + excluded.accepted, dismissed = dismissed + excluded.dismissed",
                    [
                        (day, lang, c["shown"], c["accepted"], c["dismissed"])
                        for (day, lang), c in rows.items()
                    ],
                )
        finally:
            conn.close()

    def totals(self, days: int | None = None, today: datetime.date | None = None) -> list[LanguageTotals]:
        """Totals per language (most shown first), over the last `days` days or all time."""
        if not self.path.exists():
            return []
        query = "SELECT language, SUM(shown), SUM(accepted), SUM(dismissed) FROM counts"
        params: tuple[str, ...] = ()
        if days is not None:
            since = (today or datetime.date.today()) - datetime.timedelta(days=max(days, 1) - 1)
            query += " WHERE day >= ?"
            params = (since.isoformat(),)
        query += " GROUP BY language ORDER BY SUM(shown) DESC, language"
        conn = self._connect()
        try:
            return [
                LanguageTotals(lang, int(s), int(a), int(d)) for lang, s, a, d in conn.execute(query, params)
            ]
        finally:
            conn.close()

    def reset(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Telemetry:
    """The server's counts since the last flush, and the language of the last suggestion per document."""

    def __init__(self, store: TelemetryStore | None) -> None:
        self.store = store  # None: telemetry off (counts are dropped)
        self._pending: Counter[tuple[str, str, str]] = Counter()
        self._language: dict[str, str] = {}
        self._lock = threading.Lock()

    def shown(self, uri: str, language: str) -> None:
        self._language[uri] = language
        self._count(language, "shown")

    def accepted(self, uri: str | None) -> None:
        self._count(self._language.get(uri or "", UNKNOWN_LANGUAGE), "accepted")

    def dismissed(self, uri: str | None) -> None:
        self._count(self._language.get(uri or "", UNKNOWN_LANGUAGE), "dismissed")

    def _count(self, language: str, event: str) -> None:
        if self.store is None:
            return
        with self._lock:
            self._pending[(datetime.date.today().isoformat(), language or UNKNOWN_LANGUAGE, event)] += 1

    def flush(self) -> None:
        """Add what was counted since the last flush to the store (kept for the next try on failure)."""
        if self.store is None:
            return
        with self._lock:
            pending, self._pending = self._pending, Counter()
        if not pending:
            return
        try:
            self.store.add(pending)
        except sqlite3.Error as exc:
            log.warning("telemetry: cannot write %s (%s); keeping the counts for later", self.store.path, exc)
            with self._lock:
                self._pending.update(pending)


def format_table(totals: list[LanguageTotals]) -> str:
    """The `codegeex-lsp stats` table."""
    if not totals:
        return "no suggestions recorded yet"
    header = f"{'language':<18}{'shown':>8}{'accepted':>10}{'dismissed':>11}{'acceptance':>12}"
    lines = [header, "-" * len(header)]
    all_time = LanguageTotals(
        "all",
        sum(t.shown for t in totals),
        sum(t.accepted for t in totals),
        sum(t.dismissed for t in totals),
    )
    for t in [*totals, all_time]:
        rate = "-" if t.acceptance_rate is None else f"{100 * t.acceptance_rate:.1f}%"
        if t is all_time:
            lines.append("-" * len(header))
        lines.append(f"{t.language:<18}{t.shown:>8}{t.accepted:>10}{t.dismissed:>11}{rate:>12}")
    return "\n".join(lines)
