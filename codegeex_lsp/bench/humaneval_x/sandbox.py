"""Run untrusted generated code: a fresh temp dir, resource limits, no network, nothing left behind.

A `Sandbox` owns one temp dir for the steps of one sample (compile, then run); each `run` starts a
new session (its own process group) under these limits, applied by `prlimit` so that no Python runs
between fork and exec (the executor calls us from threads):

- wall clock (`Limits.wall_s`): the whole process group is SIGKILLed when it runs out;
- CPU (RLIMIT_CPU): SIGXCPU at `cpu_s`, SIGKILL one second later; per process, so a forking child
  is caught by the wall clock instead;
- address space (RLIMIT_AS): per language, because the JVM and Go reserve large virtual ranges;
- file size (RLIMIT_FSIZE): also caps stdout/stderr, which go to files, not pipes, so a chatty
  program cannot fill our memory;
- processes (RLIMIT_NPROC): counts every process and thread of the real user, not just the
  sandbox's (hence a generous default: a desktop session alone has hundreds of threads), and the
  kernel does not enforce it for root (uid 0 / CAP_SYS_RESOURCE / CAP_SYS_ADMIN). As root the
  fork-bomb guard is therefore only the wall clock plus the pid namespace below, which kills every
  descendant when the run ends;
- core dumps off (RLIMIT_CORE = 0).

The environment is rebuilt from nothing: PATH, HOME and TMPDIR (the temp dir), LANG, plus what the
language asks for. Network and process isolation come from `unshare`: a new network namespace
(only a downed loopback, so neither the internet nor the host's localhost listeners are reachable)
and a new pid namespace (`kill -1` cannot reach the host's processes, and a child that escapes the
process group with setsid() still dies with the namespace). `probe_isolation` finds what this host
allows: plain `unshare` as root, `unshare --map-root-user` for other users where user namespaces are
enabled, else no namespaces at all; then the scrubbed environment (no proxy variables) is the only
network barrier, and `Isolation.note` says so. Nothing here stops the code from reading or writing
the user's files: run the benchmark as an unprivileged user when that matters.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout", "error"]

GiB = 1 << 30
MiB = 1 << 20
TAIL_BYTES = 4096
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

# Under the pid namespace the first process is the namespace's init, and the kernel drops signals
# with a default action sent to an init (RLIMIT_CPU's SIGXCPU included). This shim makes the real
# command pid 2; `; exit $?` keeps dash from exec-ing it in place. A signal death comes back as
# 128 + signal number, which `_returncode` turns into the usual negative returncode.
_INIT_SHIM = ("/bin/sh", "-c", '"$@"; exit $?', "sh")

_NAMESPACE_CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("unshare", "--net", "--pid", "--fork", "--kill-child"),
    ("unshare", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"),
    ("unshare", "--net"),
    ("unshare", "--map-root-user", "--net"),
)


@dataclass(frozen=True)
class Limits:
    """Resource limits for one step; `cpu_s` is rounded up to whole seconds (RLIMIT_CPU's unit)."""

    wall_s: float = 10.0
    cpu_s: float = 10.0
    memory_bytes: int = 2 * GiB
    nproc: int = 4096
    fsize_bytes: int = 64 * MiB


@dataclass(frozen=True)
class Isolation:
    """What `unshare` can do on this host, found once by `probe_isolation`."""

    prefix: tuple[str, ...]
    network: bool
    pid_namespace: bool
    note: str


@dataclass(frozen=True)
class SandboxResult:
    """How one step ended. `stdout`/`stderr` are the last `TAIL_BYTES` of each, decoded."""

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@functools.cache
def probe_isolation() -> Isolation:
    """The strongest `unshare` prefix that runs a trivial command here (cached per process)."""
    if shutil.which("unshare"):
        for prefix in _NAMESPACE_CANDIDATES:
            argv = [*prefix, *(_INIT_SHIM if "--pid" in prefix else ()), "/bin/true"]
            try:
                probe = subprocess.run(argv, capture_output=True, timeout=10, env={"PATH": DEFAULT_PATH})
            except (OSError, subprocess.TimeoutExpired):
                continue
            if probe.returncode == 0:
                pid = "--pid" in prefix
                user = " in a user namespace" if "--map-root-user" in prefix else ""
                return Isolation(
                    prefix=prefix,
                    network=True,
                    pid_namespace=pid,
                    note=f"network{' and pid' if pid else ''} namespace via unshare{user}",
                )
    return Isolation(
        prefix=(),
        network=False,
        pid_namespace=False,
        note="no namespaces available: network NOT isolated (only proxy variables scrubbed)",
    )


class Sandbox:
    """A temp dir that lives for the `with` block; `run` executes one step inside it.

    The working dir is `<root>/work`; captured output is kept beside it in `<root>`, out of the
    program's cwd.
    """

    def __init__(
        self,
        files: Mapping[str, str | bytes] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        path: str = DEFAULT_PATH,
        isolation: Isolation | None = None,
    ) -> None:
        self.isolation = isolation if isolation is not None else probe_isolation()
        self._root = Path(tempfile.mkdtemp(prefix="hx-"))
        self.dir = self._root / "work"
        self.dir.mkdir()
        self._env = {
            "PATH": path,
            "HOME": str(self.dir),
            "TMPDIR": str(self.dir),
            "LANG": "C.UTF-8",
            **(env or {}),
        }
        self._n_runs = 0
        try:
            for name, content in (files or {}).items():
                self.write(name, content)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, name: str, content: str | bytes) -> Path:
        """Create `name` (relative, parents made) in the working dir."""
        target = self.dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
        return target

    def run(self, argv: Sequence[str], limits: Limits | None = None) -> SandboxResult:
        """Run one command to completion or until a limit; never raises for the command's faults."""
        limits = limits or Limits()
        self._n_runs += 1
        out_path = self._root / f"stdout.{self._n_runs}"
        err_path = self._root / f"stderr.{self._n_runs}"
        shim = _INIT_SHIM if self.isolation.pid_namespace else ()
        command = [*_prlimit_prefix(limits), *self.isolation.prefix, *shim, *argv]
        started = time.monotonic()
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    command,
                    cwd=self.dir,
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    preexec_fn=None if _PRLIMIT else functools.partial(_set_rlimits, limits),
                )
            except OSError as exc:
                return SandboxResult(
                    "error", None, "", "", time.monotonic() - started, f"cannot start: {exc}"
                )
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                # Also ends daemons the program left in its group after a normal exit.
                _kill_group(proc)
        wall_s = time.monotonic() - started
        returncode = _returncode(proc.returncode, shimmed=bool(shim))
        status, detail = _classify(returncode, timed_out, limits)
        return SandboxResult(status, returncode, _tail(out_path), _tail(err_path), wall_s, detail)

    def close(self) -> None:
        """Remove the temp dir, including files a program made read-only."""
        shutil.rmtree(self._root, onerror=_force_remove)


def run_sandboxed(
    argv: Sequence[str],
    files: Mapping[str, str | bytes] | None = None,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
) -> SandboxResult:
    """One command in a fresh sandbox: the single-step shorthand for `with Sandbox(...)`."""
    with Sandbox(files, env) as box:
        return box.run(argv, limits)


_PRLIMIT = shutil.which("prlimit")


def _rlimits(limits: Limits) -> list[tuple[str, int, int, int]]:
    cpu = max(1, int(-(-limits.cpu_s // 1)))
    return [
        ("cpu", resource.RLIMIT_CPU, cpu, cpu + 1),
        ("as", resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        ("nproc", resource.RLIMIT_NPROC, limits.nproc, limits.nproc),
        ("fsize", resource.RLIMIT_FSIZE, limits.fsize_bytes, limits.fsize_bytes),
        ("core", resource.RLIMIT_CORE, 0, 0),
    ]


def _prlimit_prefix(limits: Limits) -> list[str]:
    if not _PRLIMIT:
        return []
    return [_PRLIMIT, *(f"--{name}={soft}:{hard}" for name, _, soft, hard in _rlimits(limits)), "--"]


def _set_rlimits(limits: Limits) -> None:
    """Fallback for hosts without util-linux's prlimit (runs in the child before exec)."""
    for _, which, soft, hard in _rlimits(limits):
        resource.setrlimit(which, (soft, hard))


def _kill_group(proc: subprocess.Popen[bytes], *, grace_s: float = 5.0) -> None:
    """SIGKILL the leader's group, reap the leader, and wait until the other members are gone.

    Killed processes take a moment to exit (and, under the pid namespace, to be torn down with it);
    a caller that looks right away, or removes the temp dir, must not find them still running.
    """
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(ProcessLookupError, PermissionError):
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)  # raises ProcessLookupError once no member is left
            time.sleep(0.005)


def _returncode(raw: int, *, shimmed: bool) -> int:
    if shimmed and 128 < raw < 128 + signal.NSIG:
        return -(raw - 128)
    return raw


def _classify(returncode: int, timed_out: bool, limits: Limits) -> tuple[Status, str]:
    if timed_out:
        return "timeout", f"wall-clock limit of {limits.wall_s:g} s"
    if returncode == 0:
        return "passed", ""
    if returncode == -signal.SIGXCPU:
        return "timeout", f"CPU limit of {limits.cpu_s:g} s"
    if returncode == -signal.SIGXFSZ:
        return "failed", f"file-size limit of {limits.fsize_bytes} bytes"
    if returncode < 0:
        return "failed", f"killed by {_signal_name(-returncode)}"
    return "failed", f"exit status {returncode}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(path: Path) -> str:
    with open(path, "rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - TAIL_BYTES))
        return stream.read().decode("utf-8", errors="replace")


def _force_remove(function: object, path: str, _exc: object) -> None:
    parent = os.path.dirname(path)
    os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)
