"""Run untrusted generated code under bubblewrap: unprivileged, isolated, limited per run.

A `Sandbox` owns one host temp dir for the steps of one sample (compile, then run). Each `run` is one
`bwrap` invocation with new mount, pid (its own `/proc`), network, IPC, UTS and cgroup namespaces,
`--die-with-parent` and `--new-session`, and an environment rebuilt from nothing. Inside it sees:
`/usr` (and the merged-usr links), `/etc` and the toolchain dirs a language names (`mounts`), all
read-only; its own `/proc` and a minimal `/dev`; private tmpfs `/tmp` and `/dev/shm` of
`Limits.tmpfs_bytes` each; and the work dir `WORK_DIR`. A *writable* step (a compiler: no generated
code runs in it) gets the host temp dir itself, so that its output survives for the next step; any
other step gets a fresh size-capped tmpfs holding read-only binds of the files in the temp dir. Never
`$HOME`, the runtime dir (`XDG_RUNTIME_DIR`, the model worker's token), or another process.

Who the code runs as (`Isolation.mode`):
- "bwrap-root" (the harness is root): bwrap sets up the namespaces as root but no user namespace,
  because bwrap maps the sandbox to the caller's uid and uid 0 is exempt from RLIMIT_NPROC and
  keeps DAC power over every root-owned file. Instead `setpriv` drops, inside the namespaces, to a
  real unprivileged uid (`UID_BASE` + a slot held by this Sandbox only, so limits counted per user
  are per run), no supplementary groups, an empty bounding set and no_new_privs.
- "bwrap-user" (the harness is a user): bwrap adds a user namespace (`--unshare-user`) mapping the
  user to uid 65534 inside, without capabilities.
- "unsafe": no sandbox at all, only rlimits in a temp dir; never chosen silently, only when the user
  passes `--unsafe-no-sandbox` (the benchmark's settings record the mode).
- "none": what `probe_isolation` reports when bwrap cannot run here; `require_isolation` (and so a
  `Sandbox` made without an explicit isolation) then refuses with `SandboxUnavailable`.

Limits, per run: rlimits set by `prlimit` inside the namespaces, after the drop (so no Python runs
between fork and exec; the executor calls us from threads), where RLIMIT_NPROC binds because the uid
is unprivileged and counted only for this run's processes (its own uid, or its own user namespace).
So the per-run caps are: processes and threads (`nproc`), address space per process
(`memory_bytes`; total memory is at most nproc x memory_bytes plus the two tmpfs), file size
(`fsize_bytes`, which also caps captured stdout/stderr: they go to files, not pipes), CPU time per
process (`cpu_s`: SIGXCPU, then SIGKILL a second later), no core dumps, and disk through the tmpfs
size caps (everything else is read-only). cgroups (memory.max, pids.max, cpu.max) are not used:
they need a delegated cgroup v2 subtree, which an unprivileged harness rarely has, and on hybrid
hosts (controllers on cgroup v1, an empty v2 hierarchy, as on the team's VMs) v2 offers no memory or
pids controller at all; the rlimits hold the same way for root and for a user. The wall clock
(`wall_s`) SIGKILLs bwrap's pid 1 in the namespace, which takes every process in it along (a
daemon included), and bwrap's group; `run` returns only once they are gone.

Verdicts: "timeout" for the wall clock and the CPU limit (also when a runtime reports it, as Go's
test binary does), "out-of-memory" when an allocation failed under the address-space limit (read
from the runtimes' own messages), "failed" otherwise, with "output capped" in `detail` when the
file-size limit stopped the output, and "error" when the sandbox itself could not run or clean up.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal

from codegeex_lsp.errors import CodegeexError

Status = Literal["passed", "failed", "timeout", "out-of-memory", "error"]
Mode = Literal["bwrap-root", "bwrap-user", "unsafe", "none"]

GiB = 1 << 30
MiB = 1 << 20
TAIL_BYTES = 4096
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
WORK_DIR = "/sandbox"
"""The program's cwd and $HOME inside the sandbox."""
UID_BASE = 1_900_000_000
UID_SLOTS = 256
"""Root mode runs each Sandbox as its own uid UID_BASE + slot, an id no account uses."""
SANDBOX_UID = 65534
"""User mode: the uid (nobody) the caller is mapped to inside the user namespace."""
_SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")

# Runtimes' own words for "ran out of the address space we allowed" and "ran out of time".
_OUT_OF_MEMORY = re.compile(
    r"MemoryError|std::bad_alloc|runtime: out of memory|java\.lang\.OutOfMemoryError"
    r"|memory allocation of \d+ bytes failed|Cannot allocate memory|JavaScript heap out of memory"
)
_TIMED_OUT = re.compile(r"panic: test timed out after|CPU time limit exceeded")


class SandboxUnavailable(CodegeexError):
    """Generated code cannot be isolated here and the user did not accept running it unsandboxed."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one step; `cpu_s` is rounded up to whole seconds (RLIMIT_CPU's unit)."""

    wall_s: float = 10.0
    cpu_s: float = 10.0
    memory_bytes: int = 2 * GiB
    nproc: int = 256
    fsize_bytes: int = 64 * MiB
    tmpfs_bytes: int = 256 * MiB


@dataclass(frozen=True)
class Isolation:
    """How runs are isolated here; `note` is what reports print."""

    mode: Mode
    note: str

    @property
    def sandboxed(self) -> bool:
        return self.mode.startswith("bwrap")


UNSAFE = Isolation("unsafe", "NO SANDBOX (--unsafe-no-sandbox): generated code ran as the harness's user")


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
    """The bwrap mode that runs a trivial program here, else mode "none" with why (cached)."""
    bwrap = shutil.which("bwrap", path=DEFAULT_PATH)
    if bwrap is None:
        return _unavailable("bubblewrap (bwrap) is not installed (scripts/install-toolchains installs it)")
    mode: Mode = "bwrap-root" if os.geteuid() == 0 else "bwrap-user"
    if mode == "bwrap-root" and shutil.which("setpriv", path=DEFAULT_PATH) is None:
        return _unavailable("setpriv (util-linux) is not installed: needed to drop root inside the sandbox")
    isolation = Isolation(mode, _describe(mode))
    try:
        with Sandbox(isolation=isolation) as box:
            probe = box.run(["/bin/true"], Limits(wall_s=30.0))
    except OSError as exc:
        return _unavailable(f"bwrap cannot run here: {exc}")
    if not probe.passed:
        return _unavailable(f"bwrap cannot run here: {probe.detail}: {probe.stderr.strip()[-300:]}")
    return isolation


def require_isolation(*, unsafe_no_sandbox: bool = False) -> Isolation:
    """The sandbox to run generated code in; `UNSAFE` only when the user asked for it by name."""
    if unsafe_no_sandbox:
        return UNSAFE
    probed = probe_isolation()
    if probed.mode == "none":
        raise SandboxUnavailable(
            f"refusing to run generated code without a sandbox: {probed.note}. "
            "Pass --unsafe-no-sandbox to run it anyway, unisolated, as your own user."
        )
    return probed


def _unavailable(reason: str) -> Isolation:
    return Isolation("none", f"no sandbox available: {reason}")


def _describe(mode: Mode) -> str:
    who = (
        "setpriv drop to a per-run unprivileged uid"
        if mode == "bwrap-root"
        else f"user namespace (uid {SANDBOX_UID} inside)"
    )
    return f"bubblewrap ({mode}): mount/pid/net/ipc/uts/cgroup namespaces, {who}, per-run rlimits"


class Sandbox:
    """A host temp dir that lives for the `with` block; `run` executes one step on it.

    The work dir is `<root>/work` on the host (`WORK_DIR` inside); captured output is kept beside
    it in `<root>`, out of the program's reach. `close` never raises: a failed cleanup is kept in
    `cleanup_error` for the caller to record.
    """

    def __init__(
        self,
        files: Mapping[str, str | bytes] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        path: str = DEFAULT_PATH,
        isolation: Isolation | None = None,
        mounts: Iterable[str] = (),
    ) -> None:
        self.isolation = isolation if isolation is not None else require_isolation()
        if self.isolation.mode == "none":
            raise SandboxUnavailable(self.isolation.note)
        self.cleanup_error = ""
        self._root = Path(tempfile.mkdtemp(prefix="hx-"))
        self.dir = self._root / "work"
        self.dir.mkdir()
        self._uid: int | None = None
        self._slot_lock: int | None = None
        self._mounts = _mount_points(mounts)
        home = str(self.dir) if self.isolation.mode == "unsafe" else WORK_DIR
        tmp = str(self.dir) if self.isolation.mode == "unsafe" else "/tmp"
        self._env = {"PATH": path, "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8", **(env or {})}
        self._n_runs = 0
        try:
            if self.isolation.mode == "bwrap-root":
                self._uid, self._slot_lock = _acquire_uid()
                os.chown(self.dir, self._uid, self._uid)
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
        """Create `name` (relative, parents made) in the work dir, readable by the sandbox."""
        target = self.dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
        target.chmod(0o644)
        if self._uid is not None:
            os.chown(target, self._uid, self._uid)
        return target

    def run(
        self, argv: Sequence[str], limits: Limits | None = None, *, writable: bool = False
    ) -> SandboxResult:
        """Run one command to completion or until a limit; never raises for the command's faults.

        `writable`: the step writes into the host work dir (compilers); otherwise the work dir is a
        fresh tmpfs with the files so far bound read-only into it.
        """
        limits = limits or Limits()
        self._n_runs += 1
        out_path = self._root / f"stdout.{self._n_runs}"
        err_path = self._root / f"stderr.{self._n_runs}"
        inner = [*_prlimit_argv(limits), *argv]
        info_read, info_write = os.pipe()
        if self.isolation.mode == "unsafe":
            command, cwd = inner, self.dir
        else:
            command = self._bwrap_argv(inner, limits, writable=writable, info_fd=info_write)
            cwd = self._root
        started = time.monotonic()
        timed_out = False
        namespace_init: int | None = None
        with open(out_path, "wb") as out, open(err_path, "wb") as err, open(info_read, "rb") as info:
            try:
                proc = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=self._env if self.isolation.mode == "unsafe" else {"PATH": DEFAULT_PATH},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    pass_fds=(info_write,) if self.isolation.sandboxed else (),
                )
            except OSError as exc:
                os.close(info_write)
                return SandboxResult(
                    "error", None, "", "", time.monotonic() - started, f"cannot start: {exc}"
                )
            os.close(info_write)
            try:
                if self.isolation.sandboxed:
                    namespace_init = _namespace_init(info, proc)
                proc.wait(timeout=max(0.0, limits.wall_s - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _end_run(proc, namespace_init)
        wall_s = time.monotonic() - started
        returncode = _returncode(proc.returncode, bwrap=self.isolation.sandboxed)
        stdout, stderr = _tail(out_path), _tail(err_path)
        capped = max(out_path.stat().st_size, err_path.stat().st_size) >= limits.fsize_bytes
        # A runtime's verdict may be at the start (Go prints "out of memory", then every goroutine).
        said = f"{_head(out_path)}\n{_head(err_path)}\n{stdout}\n{stderr}"
        status, detail = _classify(returncode, timed_out, limits, said, capped=capped)
        return SandboxResult(status, returncode, stdout, stderr, wall_s, detail)

    def _bwrap_argv(self, inner: list[str], limits: Limits, *, writable: bool, info_fd: int) -> list[str]:
        argv = [
            "bwrap",
            "--info-fd",
            str(info_fd),
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
        if self.isolation.mode == "bwrap-user":
            argv += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        argv += ["--die-with-parent", "--new-session", "--clearenv"]
        for name, value in self._env.items():
            argv += ["--setenv", name, value]
        for name in _SYSTEM_DIRS:
            host = Path("/") / name
            if host.is_symlink():
                argv += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), str(host)]
        argv += ["--ro-bind", "/etc", "/etc"]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        for tmp in ("/tmp", "/dev/shm"):
            argv += ["--perms", "1777", "--size", str(limits.tmpfs_bytes), "--tmpfs", tmp]
        # Toolchains after the private /tmp: a venv or npm prefix under /tmp (a checkout in /tmp)
        # would otherwise be hidden under the fresh tmpfs.
        made: set[str] = {"/"}
        for mount in self._mounts:
            argv += _parent_dirs(mount, made)
            argv += ["--ro-bind", mount, mount]
        if writable:
            argv += ["--bind", str(self.dir), WORK_DIR]
        else:
            argv += ["--perms", "1777", "--size", str(limits.tmpfs_bytes), "--tmpfs", WORK_DIR]
            for entry in sorted(self.dir.iterdir()):
                argv += ["--ro-bind", str(entry), f"{WORK_DIR}/{entry.name}"]
        argv += ["--chdir", WORK_DIR, "--"]
        if self._uid is not None:
            argv += [
                "setpriv",
                f"--reuid={self._uid}",
                f"--regid={self._uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        return argv + inner

    def close(self) -> None:
        """Remove the temp dir and free the uid; a failure lands in `cleanup_error`, never raised."""
        try:
            shutil.rmtree(self._root, onerror=_force_remove)
        except OSError as exc:
            self.cleanup_error = f"cannot remove {self._root}: {exc}"
        if self._slot_lock is not None:
            os.close(self._slot_lock)
            self._slot_lock = None


def run_sandboxed(
    argv: Sequence[str],
    files: Mapping[str, str | bytes] | None = None,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    *,
    isolation: Isolation | None = None,
    mounts: Iterable[str] = (),
) -> SandboxResult:
    """One command in a fresh sandbox: the single-step shorthand for `with Sandbox(...)`."""
    with Sandbox(files, env, isolation=isolation, mounts=mounts) as box:
        result = box.run(argv, limits)
    if box.cleanup_error:
        return replace(result, status="error", detail=f"cleanup: {box.cleanup_error}")
    return result


_uid_guard = threading.Lock()


def _acquire_uid() -> tuple[int, int]:
    """A uid no other live Sandbox (in any process) holds, and the locked file that holds it."""
    lock_dir = Path(tempfile.gettempdir()) / "codegeex-sandbox-uids"
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    with _uid_guard:
        for slot in range(UID_SLOTS):
            fd = os.open(lock_dir / str(slot), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return UID_BASE + slot, fd
    raise SandboxUnavailable(f"all {UID_SLOTS} sandbox uids are in use")


def _mount_points(paths: Iterable[str]) -> list[str]:
    """Existing absolute paths, outside what is bound anyway, without ones nested in others."""
    covered = ("/usr/", "/etc/", *(f"/{name}/" for name in _SYSTEM_DIRS))
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    kept: list[str] = []
    for path in real:
        if path == "/" or (path + "/").startswith(covered):
            continue
        if not any(path == k or path.startswith(k + "/") for k in kept):
            kept.append(path)
    return kept


def _parent_dirs(path: str, made: set[str]) -> list[str]:
    """bwrap makes missing parents 0700 as root; make them 0755 so the dropped uid can pass."""
    argv: list[str] = []
    parts = Path(path).parts[1:-1]
    for depth in range(1, len(parts) + 1):
        parent = "/" + "/".join(parts[:depth])
        if parent not in made:
            made.add(parent)
            argv += ["--perms", "0755", "--dir", parent]
    return argv


def _prlimit_argv(limits: Limits) -> list[str]:
    cpu = max(1, int(-(-limits.cpu_s // 1)))
    return [
        "prlimit",
        f"--cpu={cpu}:{cpu + 1}",
        f"--as={limits.memory_bytes}",
        f"--nproc={limits.nproc}",
        f"--fsize={limits.fsize_bytes}",
        "--core=0",
        "--",
    ]


def _namespace_init(info: BinaryIO, proc: subprocess.Popen[bytes]) -> int | None:
    """A pidfd on bwrap's pid 1 in the namespace, from the JSON bwrap writes to `--info-fd`.

    Taken while the outer bwrap (its parent, which alone reaps it) still runs, so the pid is the
    namespace's. None when bwrap ended before it told (it failed, or the program was that quick).
    """
    data = info.read()  # bwrap closes the fd right after writing it, or exits
    try:
        child = int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None
    if proc.poll() is not None:
        return None
    try:
        return os.pidfd_open(child)
    except OSError:
        return None


def _end_run(proc: subprocess.Popen[bytes], namespace_init: int | None, *, grace_s: float = 10.0) -> None:
    """SIGKILL the namespace's pid 1 and bwrap's group, and return once all of it is gone.

    The namespace's pid 1 runs in its own session (bwrap's --new-session), out of our process
    group; when it dies the kernel kills every process in the namespace before its exit completes,
    so a readable pidfd means nothing of the run is left. Without a namespace (unsafe mode) the
    process group is all we can reach.
    """
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    if namespace_init is not None:
        try:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(namespace_init, signal.SIGKILL)
            select.select([namespace_init], [], [], grace_s)
        finally:
            os.close(namespace_init)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(ProcessLookupError, PermissionError):
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)  # raises ProcessLookupError once no member is left
            time.sleep(0.005)


def _returncode(raw: int, *, bwrap: bool) -> int:
    # bwrap reports a command killed by signal N as exit status 128 + N.
    if bwrap and 128 < raw < 128 + signal.NSIG:
        return -(raw - 128)
    return raw


def _classify(
    returncode: int, timed_out: bool, limits: Limits, output: str, *, capped: bool
) -> tuple[Status, str]:
    if timed_out:
        return "timeout", f"wall-clock limit of {limits.wall_s:g} s"
    if returncode == -signal.SIGXCPU:
        return "timeout", f"CPU limit of {limits.cpu_s:g} s"
    if capped:
        return "failed", f"output capped at the file-size limit of {limits.fsize_bytes} bytes"
    if returncode == -signal.SIGXFSZ:
        return "failed", f"file-size limit of {limits.fsize_bytes} bytes"
    if returncode == 0:
        return "passed", ""
    if _TIMED_OUT.search(output):
        return "timeout", f"the runtime reported a timeout (CPU limit {limits.cpu_s:g} s)"
    if _OUT_OF_MEMORY.search(output):
        return (
            "out-of-memory",
            f"allocation failed under the {limits.memory_bytes >> 20} MiB address-space limit",
        )
    if returncode == -signal.SIGKILL:
        # Nothing else here sends SIGKILL: RLIMIT_CPU's hard limit does, where a runtime ignores
        # SIGXCPU (no cgroup memory killer is in play, see the module docstring).
        return "timeout", f"killed by SIGKILL at the hard CPU limit ({limits.cpu_s:g} s + 1 s)"
    if returncode < 0:
        return "failed", f"killed by {_signal_name(-returncode)}"
    return "failed", f"exit status {returncode}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _head(path: Path) -> str:
    with open(path, "rb") as stream:
        return stream.read(TAIL_BYTES).decode("utf-8", errors="replace")


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
