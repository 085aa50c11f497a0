"""The sandbox's promises, each checked from inside: limits, isolation, cleanup."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x import sandbox
from codegeex_lsp.bench.humaneval_x.sandbox import (
    UNSAFE,
    WORK_DIR,
    Isolation,
    Limits,
    MiB,
    Sandbox,
    SandboxUnavailable,
    probe_isolation,
    require_isolation,
    run_sandboxed,
)

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
    result = _run_python([PY, "-c", script, marker], limits=Limits(wall_s=1.0, cpu_s=5.0))
    assert result.status == "timeout"
    assert "wall-clock" in result.detail
    assert _processes_with(marker) == []


def test_children_left_in_the_group_die_with_the_run() -> None:
    marker = f"hx-test-{uuid.uuid4().hex}"
    result = run_sandboxed(["/bin/sh", "-c", f"sleep 1000 {marker} 2>/dev/null & exit 0"])
    assert result.status == "passed"
    assert _processes_with(marker) == []


def test_setsid_escapee_dies_with_the_pid_namespace() -> None:
    marker = f"hx-test-{uuid.uuid4().hex}"
    script = "import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\nsys.exit(0)\n"
    assert _run_python([PY, "-c", script, marker]).status == "passed"
    assert _processes_with(marker) == []


def test_cpu_limit_stops_a_busy_loop() -> None:
    result = _run_python([PY, "-c", "while True: pass"], limits=Limits(wall_s=20.0, cpu_s=1.0))
    assert result.status == "timeout"
    assert "CPU" in result.detail


def test_memory_limit_stops_an_allocation_bomb() -> None:
    bomb = "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 2**20))\n"
    with Sandbox(mounts=_python_mounts()) as box:
        result = box.run([PY, "-c", bomb], Limits(memory_bytes=512 * MiB))
    assert result.status == "out-of-memory"
    assert "MemoryError" in result.stderr


def test_file_size_limit_kills_a_large_write() -> None:
    with Sandbox() as box:
        command = ["/bin/sh", "-c", "head -c 4000000 /dev/zero > big"]
        result = box.run(command, Limits(fsize_bytes=1 * MiB), writable=True)
        assert result.status == "failed"
        assert result.detail == f"file-size limit of {1 * MiB} bytes"
        assert (box.dir / "big").stat().st_size <= 1 * MiB


def test_file_size_limit_caps_captured_output() -> None:
    result = run_sandboxed(["yes"], limits=Limits(wall_s=10.0, fsize_bytes=1 * MiB))
    assert result.status == "failed"
    assert "output capped" in result.detail
    assert len(result.stdout) <= 4096


def test_rlimits_are_set_inside() -> None:
    """Set inside the namespaces, after the drop to an unprivileged uid (where NPROC binds)."""
    limits = Limits(cpu_s=7.0, memory_bytes=1536 * MiB, nproc=123, fsize_bytes=3 * MiB)
    result = run_sandboxed(["cat", "/proc/self/limits"], limits=limits)
    rows = {line[:26].strip(): line[26:].split()[:2] for line in result.stdout.splitlines()[1:]}
    assert rows["Max cpu time"] == ["7", "8"]
    assert rows["Max address space"] == [str(1536 * MiB)] * 2
    assert rows["Max processes"] == ["123", "123"]
    assert rows["Max file size"] == [str(3 * MiB)] * 2
    assert rows["Max core file size"] == ["0", "0"]


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
        with Sandbox(mounts=_python_mounts()) as box:
            result = box.run([PY, "-c", script, str(port)])
    assert result.status == "passed"
    assert "connected" not in result.stdout
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["refused", "refused"]


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HX_SECRET_TOKEN", "leak")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    with Sandbox(env={"EXTRA": "1"}) as box:
        result = box.run(["env"])
        env = dict(line.split("=", 1) for line in result.stdout.splitlines())
        assert (env["HOME"], env["TMPDIR"]) == (WORK_DIR, "/tmp")
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "EXTRA", "PWD", "SHLVL", "_"}
    assert env["EXTRA"] == "1"


def test_temp_dir_is_removed_even_after_a_timeout_and_read_only_files() -> None:
    with Sandbox(files={"a/b.txt": "x"}) as box:
        work = box.dir
        box.run(["/bin/sh", "-c", "mkdir ro && touch ro/f && chmod 500 ro && chmod 400 ro/f"], writable=True)
        assert box.run(["sleep", "10"], Limits(wall_s=0.5)).status == "timeout"
        assert (work / "a/b.txt").read_text() == "x"
    assert not work.exists()
    assert not work.parent.exists()


def test_missing_program_fails_inside_the_sandbox() -> None:
    result = run_sandboxed(["/nonexistent/program"])
    assert (result.status, result.returncode) == ("failed", 127)


def test_unsafe_mode_is_only_taken_when_asked_for() -> None:
    assert require_isolation(unsafe_no_sandbox=True) is UNSAFE
    assert require_isolation().sandboxed
    result = run_sandboxed(["/bin/sh", "-c", "pwd"], isolation=UNSAFE)
    assert result.status == "passed"
    assert result.stdout.strip() != WORK_DIR


def test_no_bwrap_means_a_refusal_not_a_silent_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    probe_isolation.cache_clear()
    monkeypatch.setattr(sandbox, "DEFAULT_PATH", "/nonexistent")
    try:
        assert probe_isolation().mode == "none"
        with pytest.raises(SandboxUnavailable, match="--unsafe-no-sandbox"):
            require_isolation()
        with pytest.raises(SandboxUnavailable, match="bwrap"):
            Sandbox()
        with pytest.raises(SandboxUnavailable):
            Sandbox(isolation=Isolation("none", "no sandbox available: test"))
    finally:
        monkeypatch.undo()
        probe_isolation.cache_clear()
    assert probe_isolation().sandboxed


def test_read_only_work_dir_for_runs_and_host_dir_for_compilers() -> None:
    with Sandbox(files={"in.txt": "x\n"}) as box:
        ran = box.run(["/bin/sh", "-c", "echo y > in.txt; echo z > new.txt; cat in.txt new.txt"])
        assert "Read-only file system" in ran.stderr
        assert ran.stdout == "x\nz\n"
        assert not (box.dir / "new.txt").exists()  # the run's tmpfs went with it
        compiled = box.run(["/bin/sh", "-c", "echo out > a.out"], writable=True)
        assert compiled.status == "passed"
        assert (box.dir / "a.out").read_text() == "out\n"


def _python_mounts() -> tuple[str, ...]:
    return (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(PY)))


def _run_python(argv: list[str], limits: Limits | None = None) -> sandbox.SandboxResult:
    return run_sandboxed(argv, limits=limits, mounts=_python_mounts())
