"""Fixtures for the worker tests: a private runtime dir per test, and no worker left behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest


def live_worker_pids(runtime: Path) -> list[int]:
    """Pids of the workers serving in `runtime` (their pid file is still locked)."""
    pids = []
    for pid_file in runtime.glob("*.pid"):
        fd = os.open(pid_file, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            with contextlib.suppress(ValueError):
                pids.append(int(pid_file.read_text().strip()))
        finally:
            os.close(fd)
    return pids


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not: a detached worker's reaper may be slow to collect it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def make_runtime() -> Path:
    """A short (socket paths are limited to 108 bytes), private runtime dir."""
    return Path(tempfile.mkdtemp(prefix="cgw-", dir="/tmp"))


def clean_runtime(path: Path) -> None:
    """Kill the workers still serving in `path` (by their pid) and remove it."""
    for pid in live_worker_pids(path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while live_worker_pids(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runtime(monkeypatch) -> Path:
    """A runtime dir for one test; the servers it starts inherit it (CODEGEEX_LSP_RUNTIME_DIR)."""
    path = make_runtime()
    monkeypatch.setenv("CODEGEEX_LSP_RUNTIME_DIR", str(path))
    yield path
    clean_runtime(path)


@pytest.fixture(scope="module")
def module_runtime() -> Path:
    """A runtime dir shared by a module's tests (passed explicitly, not through the environment)."""
    path = make_runtime()
    yield path
    clean_runtime(path)
