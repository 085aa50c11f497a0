"""The sandbox's promises, each checked from inside: limits, isolation, cleanup."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x.sandbox import Limits, MiB, Sandbox, probe_isolation, run_sandboxed

PY = sys.executable
SHORT = Limits(wall_s=2.0, cpu_s=2.0)


def _processes_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_passes_and_fails_by_exit_status() -> None:
    assert run_sandboxed(["/bin/true"]).status == "passed"
    failed = run_sandboxed(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (failed.status, failed.returncode, failed.stdout, failed.stderr) == ("failed", 3, "out\n", "err\n")


def test_wall_timeout_kills_sleeping_and_forking_children() -> None:
    marker = f"hx-test-{uuid.uuid4().hex}"
    script = "import os, time\nfor _ in range(3):\n    os.fork()\ntime.sleep(1000)\n"
    result = run_sandboxed([PY, "-c", script, marker], limits=Limits(wall_s=1.0, cpu_s=5.0))
    assert result.status == "timeout"
    assert "wall-clock" in result.detail
    assert result.wall_s < 10
    assert _processes_with(marker) == []


def test_children_left_in_the_group_die_with_the_run() -> None:
    marker = f"hx-test-{uuid.uuid4().hex}"
    result = run_sandboxed(["/bin/sh", "-c", f"sleep 1000 {marker} 2>/dev/null & exit 0"])
    assert result.status == "passed"
    assert _processes_with(marker) == []


@pytest.mark.skipif(not probe_isolation().pid_namespace, reason="no pid namespace on this host")
def test_setsid_escapee_dies_with_the_pid_namespace() -> None:
    marker = f"hx-test-{uuid.uuid4().hex}"
    script = "import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\nsys.exit(0)\n"
    assert run_sandboxed([PY, "-c", script, marker]).status == "passed"
    assert _processes_with(marker) == []


def test_cpu_limit_stops_a_busy_loop() -> None:
    result = run_sandboxed([PY, "-c", "while True: pass"], limits=Limits(wall_s=20.0, cpu_s=1.0))
    assert result.status == "timeout"
    assert "CPU" in result.detail
    assert result.wall_s < 15


def test_memory_limit_stops_an_allocation_bomb() -> None:
    bomb = "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 2**20))\n"
    result = run_sandboxed([PY, "-c", bomb], limits=Limits(memory_bytes=512 * MiB))
    assert result.status == "failed"
    assert "MemoryError" in result.stderr


def test_file_size_limit_kills_a_large_write() -> None:
    with Sandbox() as box:
        result = box.run(["/bin/sh", "-c", "head -c 4000000 /dev/zero > big"], Limits(fsize_bytes=1 * MiB))
        assert result.status == "failed"
        assert "file-size" in result.detail
        assert (box.dir / "big").stat().st_size <= 1 * MiB


def test_file_size_limit_caps_captured_output() -> None:
    result = run_sandboxed(["yes"], limits=Limits(wall_s=10.0, fsize_bytes=1 * MiB))
    assert result.status == "failed"
    assert "file-size" in result.detail
    assert len(result.stdout) <= 4096


def test_rlimits_are_set_inside() -> None:
    """RLIMIT_NPROC is set even though the kernel ignores it for root (see sandbox's docstring)."""
    limits = Limits(cpu_s=7.0, memory_bytes=1536 * MiB, nproc=123, fsize_bytes=3 * MiB)
    result = run_sandboxed(["cat", "/proc/self/limits"], limits=limits)
    rows = {line[:26].strip(): line[26:].split()[:2] for line in result.stdout.splitlines()[1:]}
    assert rows["Max cpu time"] == ["7", "8"]
    assert rows["Max address space"] == [str(1536 * MiB)] * 2
    assert rows["Max processes"] == ["123", "123"]
    assert rows["Max file size"] == [str(3 * MiB)] * 2
    assert rows["Max core file size"] == ["0", "0"]


@pytest.mark.skipif(not probe_isolation().network, reason="no network namespace on this host")
def test_network_is_unreachable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        script = (
            "import socket, sys\n"
            "for address in [('1.1.1.1', 53), ('127.0.0.1', int(sys.argv[1]))]:\n"
            "    try:\n"
            "        socket.create_connection(address, timeout=3).close()\n"
            "        print('connected', address)\n"
            "    except OSError as exc:\n"
            "        print('refused', address, exc)\n"
        )
        result = run_sandboxed([PY, "-c", script, str(port)])
    assert result.status == "passed"
    assert "connected" not in result.stdout
    assert result.stdout.count("refused") == 2


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HX_SECRET_TOKEN", "leak")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    with Sandbox(env={"EXTRA": "1"}) as box:
        result = box.run(["env"])
        env = dict(line.split("=", 1) for line in result.stdout.splitlines())
        assert env["HOME"] == env["TMPDIR"] == str(box.dir)
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "EXTRA", "PWD", "SHLVL", "_"}
    assert env["EXTRA"] == "1"


def test_temp_dir_is_removed_even_after_a_timeout_and_read_only_files() -> None:
    with Sandbox(files={"a/b.txt": "x"}) as box:
        work = box.dir
        box.run(["/bin/sh", "-c", "mkdir ro && touch ro/f && chmod 500 ro && chmod 400 ro/f"])
        assert box.run(["sleep", "10"], Limits(wall_s=0.5)).status == "timeout"
        assert (work / "a/b.txt").read_text() == "x"
    assert not work.exists()
    assert not work.parent.exists()


def test_missing_program_is_an_error_not_a_failure() -> None:
    result = run_sandboxed(["/nonexistent/program"])
    if probe_isolation().prefix:
        # Through unshare the exec failure happens inside the sandbox: exit status 127.
        assert result.status == "failed"
    else:
        assert result.status == "error"
    assert os.path.exists("/tmp")
