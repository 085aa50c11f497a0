"""Hostile programs through the harness's own path (recipe, marker protocol, sandbox, small limits).

Each attack runs as a HumanEval-X program in Python, C++ and (most) Go, and is checked twice: by
the status the harness gives it, and from outside (a victim process this test started survives, a
secret planted in this process's environment, $HOME and runtime dir never shows up, no file
appears outside, no process or mount is left behind). The programs print what they saw, so a
failing assertion shows what got through.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x import execute as execute_module
from codegeex_lsp.bench.humaneval_x.execute import execute
from codegeex_lsp.bench.humaneval_x.sandbox import WORK_DIR, Limits, MiB, Sandbox, SandboxResult
from codegeex_lsp.bench.humaneval_x.sandbox_run import task_for_file
from codegeex_lsp.bench.humaneval_x.toolchains import find_toolchain, installed

SMALL = Limits(
    wall_s=6.0, cpu_s=3.0, memory_bytes=384 * MiB, nproc=32, fsize_bytes=4 * MiB, tmpfs_bytes=16 * MiB
)
GO_SMALL = replace(SMALL, memory_bytes=1024 * MiB)
"""Go's runtime reserves more address space at start than Python or C++ need."""
LANGUAGES = ("python", "cpp", "go")


@dataclass
class Host:
    """What the attacks aim at, planted by this test; `secret` must never reach a program."""

    secret: str
    token: str
    home: Path
    runtime: Path
    victim: subprocess.Popen[bytes]
    monkeypatch: pytest.MonkeyPatch

    def fill(self, source: str) -> str:
        half = len(self.secret) // 2
        return (
            source.replace("@SECRET_A@", self.secret[:half])
            .replace("@SECRET_B@", self.secret[half:])
            .replace("@TOKEN@", self.token)
            .replace("@HOME@", str(self.home))
            .replace("@RUNTIME@", str(self.runtime))
            .replace("@VICTIM@", str(self.victim.pid))
            .replace("@NPROC@", str(SMALL.nproc))
            .replace("@TMPFS@", str(SMALL.tmpfs_bytes))
            .replace("@CWD@", os.getcwd())
        )


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    secret = f"hx-secret-{uuid.uuid4().hex}"
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/id_ed25519").write_text(secret)
    runtime.mkdir(mode=0o700)
    (runtime / "worker.token").write_text(secret)
    monkeypatch.setenv("HX_PLANTED_SECRET", secret)  # in this process's /proc/<pid>/environ
    victim = subprocess.Popen(["sleep", "1000"], env={"HX_PLANTED_SECRET": secret, "PATH": "/usr/bin:/bin"})
    try:
        yield Host(secret, f"hx-token-{uuid.uuid4().hex}", home, runtime, victim, monkeypatch)
        assert victim.poll() is None, "the victim process was killed"
        assert sorted(p.name for p in home.rglob("*")) == [".ssh", "id_ed25519"], "a file appeared in $HOME"
    finally:
        victim.kill()
        victim.wait()


def hostile(host: Host, language: str, source: str, limits: Limits | None = None) -> SandboxResult:
    """Run `source` as the harness runs a sample, under small limits; assert the secret stayed out."""
    limits = limits or (GO_SMALL if language == "go" else SMALL)
    host.monkeypatch.setattr(execute_module, "RUN_LIMITS", limits)
    toolchain = find_toolchain(language)
    assert toolchain.available, toolchain.reason
    result = execute(task_for_file(language, host.fill(source), "hostile"), "", toolchain)
    assert host.secret not in result.stdout + result.stderr
    return result


def _langs(*languages: str) -> list[object]:
    return [
        pytest.param(language, marks=pytest.mark.skipif(not installed(language), reason=f"no {language}"))
        for language in languages
    ]


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _sandbox_processes() -> list[int]:
    """Live processes whose cwd is the sandbox's work dir (seen from the host: the path inside)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd") == WORK_DIR:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _mount_points() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


# --- fork bomb: processes capped per run, the run ends at the wall clock, nothing survives ---

FORK_BOMB = {
    "python": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "cpp": "#include <unistd.h>\nint main() {\n    while (true) fork();\n}\n",
}


@pytest.mark.parametrize("language", _langs("python", "cpp"))
def test_fork_bomb_times_out_and_leaves_nothing(host: Host, language: str) -> None:
    result = hostile(host, language, FORK_BOMB[language])
    assert result.status == "timeout", result
    assert _sandbox_processes() == []


FORK_COUNT = {
    "python": """\
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as exc:
    print("forks", n, exc)
assert n < @NPROC@, n
""",
    "cpp": """\
#include <unistd.h>
#include <cassert>
#include <cstdio>
int main() {
    int n = 0;
    while (true) {
        pid_t pid = fork();
        if (pid < 0) break;
        if (pid == 0) { sleep(30); _exit(0); }
        n++;
    }
    printf("forks %d\\n", n);
    fflush(stdout);
    assert(n < @NPROC@);
}
""",
}


@pytest.mark.parametrize("language", _langs("python", "cpp"))
def test_process_count_is_capped_per_run(host: Host, language: str) -> None:
    result = hostile(host, language, FORK_COUNT[language])
    assert result.status == "passed", result
    forks = int(result.stdout.split()[1])
    assert 0 < forks < SMALL.nproc


# --- memory bomb across several children: every child stops at the address-space limit ---

MEMORY_CHILDREN = {
    "python": """\
import os, sys
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        chunks = []
        try:
            while len(chunks) < 16:
                chunks.append(bytearray(64 << 20))
        finally:
            # Free the chunks first: at the limit even this line's string may fail to allocate.
            got = len(chunks) * 64
            chunks.clear()
            sys.stderr.write(f"child got {got} MiB\\n")
        os._exit(0)
    pids.append(pid)
sys.exit(1 if any(os.waitpid(pid, 0)[1] for pid in pids) else 0)
""",
    "cpp": """\
#include <unistd.h>
#include <sys/wait.h>
#include <cstdio>
#include <cstring>
#include <new>
int main() {
    for (int i = 0; i < 4; i++) {
        if (fork() == 0) {
            size_t got = 0;
            try {
                for (int k = 0; k < 16; k++) {
                    char *p = new char[64 << 20];
                    memset(p, 1, 64 << 20);
                    got += 64;
                }
            } catch (std::bad_alloc &) {
                fprintf(stderr, "child got %zu MiB: std::bad_alloc\\n", got);
                _exit(3);
            }
            fprintf(stderr, "child got %zu MiB\\n", got);
            _exit(0);
        }
    }
    int status, failed = 0;
    while (wait(&status) > 0) failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    return failed ? 1 : 0;
}
""",
    "go": """\
package main

import "testing"

var keep [][]byte

func TestMemory(t *testing.T) {
    for i := 0; i < 64; i++ {
        chunk := make([]byte, 64<<20)
        chunk[0] = 1
        keep = append(keep, chunk)
    }
}
""",
}


@pytest.mark.parametrize("language", _langs(*LANGUAGES))
def test_memory_bomb_is_out_of_memory_in_every_child(host: Host, language: str) -> None:
    # Filling four children's memory is slow on a busy machine: the wall clock must not win.
    limits = replace(GO_SMALL if language == "go" else SMALL, wall_s=60.0)
    result = hostile(host, language, MEMORY_CHILDREN[language], limits)
    assert result.status == "out-of-memory", result
    got = [int(line.split()[2]) for line in result.stderr.splitlines() if line.startswith("child got")]
    if language != "go":
        assert len(got) == 4
    assert all(mib * MiB < limits.memory_bytes for mib in got), got


# --- disk: the work dir, /tmp and /dev/shm are size-capped tmpfs; everything else is read-only ---

DISK_FILL = """\
import errno, os

def fill(directory):
    total = 0
    for i in range(1000):
        try:
            with open(os.path.join(directory, f"fill{i}"), "wb") as out:
                while True:
                    out.write(b"x" * (1 << 20))
                    out.flush()
                    total += 1 << 20
        except OSError as exc:
            if exc.errno != errno.EFBIG:
                return total, errno.errorcode[exc.errno]
    return total, "no limit"

inside = {path: fill(path) for path in [".", "/tmp", "/dev/shm"]}
outside = {path: fill(path) for path in ["@HOME@", "/var/tmp", "/usr/local", "/etc", "@CWD@", "/"]}
print(inside, outside)
assert all(total <= @TMPFS@ and why == "ENOSPC" for total, why in inside.values()), inside
assert all(total == 0 for total, _ in outside.values()), outside
"""


def test_disk_fill_inside_and_outside_is_contained(host: Host) -> None:
    result = hostile(host, "python", DISK_FILL)
    assert result.status == "passed", result
    assert not list(Path.cwd().glob("fill*"))


# --- secrets: /proc/*/environ, $HOME, the runtime dir (the worker's token) ---

READ_SECRETS = {
    "python": """\
import glob, os
secret = "@SECRET_A@" + "@SECRET_B@"
paths = glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline") + [
    "/proc/@VICTIM@/environ", "/proc/1/environ", "@HOME@/.ssh/id_ed25519", "@RUNTIME@/worker.token",
    "/root/.ssh/id_rsa", "/etc/shadow",
]
leaks = []
for path in paths:
    try:
        with open(path, "rb") as stream:
            if secret.encode() in stream.read():
                leaks.append(path)
    except OSError as exc:
        print(path, exc.strerror)
for directory in ["@HOME@", "@RUNTIME@", "/root", "/home", "/run/user"]:
    try:
        print(directory, os.listdir(directory))
    except OSError as exc:
        print(directory, exc.strerror)
print("pids visible:", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
assert not leaks, leaks
""",
    "cpp": """\
#include <dirent.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <cassert>
static bool holds(const std::string &path, const std::string &secret) {
    FILE *f = fopen(path.c_str(), "rb");
    if (!f) { printf("%s: %s\\n", path.c_str(), strerror(errno)); return false; }
    std::string data; char buf[4096]; size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
    fclose(f);
    return data.find(secret) != std::string::npos;
}
int main() {
    std::string secret = std::string("@SECRET_A@") + "@SECRET_B@";
    int leaks = 0;
    DIR *proc = opendir("/proc");
    while (struct dirent *e = readdir(proc))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
            leaks += holds(std::string("/proc/") + e->d_name + "/environ", secret);
    closedir(proc);
    for (const char *p : {"/proc/@VICTIM@/environ", "@HOME@/.ssh/id_ed25519", "@RUNTIME@/worker.token"})
        leaks += holds(p, secret);
    printf("leaks %d\\n", leaks);
    assert(leaks == 0);
}
""",
    "go": """\
package main

import (
    "os"
    "path/filepath"
    "strings"
    "testing"
)

func TestSecrets(t *testing.T) {
    secret := "@SECRET_A@" + "@SECRET_B@"
    paths, _ := filepath.Glob("/proc/*/environ")
    paths = append(paths, "/proc/@VICTIM@/environ", "@HOME@/.ssh/id_ed25519", "@RUNTIME@/worker.token")
    for _, path := range paths {
        data, err := os.ReadFile(path)
        if err != nil {
            println(path, err.Error())
            continue
        }
        if strings.Contains(string(data), secret) {
            t.Errorf("leak in %s", path)
        }
    }
}
""",
}


@pytest.mark.parametrize("language", _langs(*LANGUAGES))
def test_environ_home_and_runtime_dir_stay_secret(host: Host, language: str) -> None:
    result = hostile(host, language, READ_SECRETS[language])
    assert result.status == "passed", result


# --- writes outside the sandbox land nowhere on the host ---

WRITE_OUTSIDE = {
    "python": """\
for path in ["@HOME@/.bashrc", "/tmp/@TOKEN@", "/dev/shm/@TOKEN@", "@CWD@/@TOKEN@", "/etc/@TOKEN@",
             "/usr/@TOKEN@", "/var/tmp/@TOKEN@", "@RUNTIME@/@TOKEN@"]:
    try:
        with open(path, "w") as stream:
            stream.write("pwned")
        print("wrote", path)
    except OSError as exc:
        print(path, exc.strerror)
""",
    "cpp": """\
#include <cerrno>
#include <cstdio>
#include <cstring>
int main() {
    for (const char *path : {"@HOME@/.bashrc", "/tmp/@TOKEN@", "/dev/shm/@TOKEN@", "@CWD@/@TOKEN@",
                             "/etc/@TOKEN@", "/usr/@TOKEN@", "@RUNTIME@/@TOKEN@"}) {
        FILE *f = fopen(path, "w");
        if (f) { fputs("pwned", f); fclose(f); printf("wrote %s\\n", path); }
        else printf("%s: %s\\n", path, strerror(errno));
    }
}
""",
    "go": """\
package main

import (
    "os"
    "testing"
)

func TestWrite(t *testing.T) {
    for _, path := range []string{"@HOME@/.bashrc", "/tmp/@TOKEN@", "/dev/shm/@TOKEN@", "@CWD@/@TOKEN@",
        "/etc/@TOKEN@", "/usr/@TOKEN@", "@RUNTIME@/@TOKEN@"} {
        err := os.WriteFile(path, []byte("pwned"), 0o644)
        println(path, err == nil)
    }
}
""",
}


@pytest.mark.parametrize("language", _langs(*LANGUAGES))
def test_writes_outside_do_not_reach_the_host(host: Host, language: str) -> None:
    result = hostile(host, language, WRITE_OUTSIDE[language])
    assert result.status == "passed", result
    for directory in ("/tmp", "/dev/shm", os.getcwd(), "/etc", "/usr", "/var/tmp", str(host.runtime)):
        assert not (Path(directory) / host.token).exists(), directory
    assert not (host.home / ".bashrc").exists()


# --- namespaces: no setns into the host's, a new one of its own reaches nothing ---

NAMESPACES = """\
import ctypes, errno, glob, os, socket
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x10000000, 0x40000000, 0x20000000

def connect():
    try:
        socket.create_connection(("127.0.0.1", @PORT@), timeout=2).close()
        return "connected"
    except OSError as exc:
        return exc.strerror

joined = []
for path in glob.glob("/proc/*/ns/*"):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        print(path, "open:", exc.strerror)
        continue
    if libc.setns(fd, 0) == 0 and not path.startswith(("/proc/self/", f"/proc/{os.getpid()}/")):
        joined.append(path)
    print(path, "setns:", os.strerror(ctypes.get_errno()))
for flag in (CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID):
    print("unshare", hex(flag), libc.unshare(flag), os.strerror(ctypes.get_errno()))
print("direct:", connect())
print("own user+net namespace:", libc.unshare(CLONE_NEWUSER | CLONE_NEWNET), connect())
assert not joined, joined
"""


def test_setns_and_unshare_reach_no_host_network(host: Host) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        result = hostile(host, "python", NAMESPACES.replace("@PORT@", str(port)))
        with pytest.raises(TimeoutError):
            listener.accept()
    assert result.status == "passed", result
    assert "connected" not in result.stdout


# --- /proc/<pid>/mem, /proc/sys, mounts ---

PROC_AND_MOUNTS = {
    "python": """\
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
opened = []
for path in ["/proc/@VICTIM@/mem", "/proc/1/mem", "/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger",
             "/sys/fs/cgroup/cgroup.procs"]:
    try:
        os.close(os.open(path, os.O_WRONLY))
        opened.append(path)
    except OSError as exc:
        print(path, exc.strerror)
mounted = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
print("mount:", mounted, os.strerror(ctypes.get_errno()))
print("umount /usr:", libc.umount2(b"/usr", 2), os.strerror(ctypes.get_errno()))
# A mount in a user+mount namespace of its own is allowed, and must stay in there.
CLONE_NEWNS, CLONE_NEWUSER = 0x20000, 0x10000000
if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0:
    print("private mount:", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
assert not opened and mounted != 0, opened
""",
    "cpp": """\
#include <fcntl.h>
#include <unistd.h>
#include <sys/mount.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cassert>
int main() {
    int opened = 0;
    for (const char *path : {"/proc/@VICTIM@/mem", "/proc/1/mem", "/proc/sys/kernel/core_pattern"}) {
        int fd = open(path, O_WRONLY);
        if (fd >= 0) { opened++; close(fd); printf("opened %s\\n", path); }
        else printf("%s: %s\\n", path, strerror(errno));
    }
    int mounted = mount("none", "/tmp", "tmpfs", 0, nullptr);
    printf("mount: %d %s\\n", mounted, strerror(errno));
    assert(opened == 0 && mounted != 0);
}
""",
}


@pytest.mark.parametrize("language", _langs("python", "cpp"))
def test_proc_mem_proc_sys_and_mounts_are_refused(host: Host, language: str) -> None:
    before = _mount_points()
    result = hostile(host, language, PROC_AND_MOUNTS[language])
    assert result.status == "passed", result
    assert _mount_points() == before


# --- signals to host processes ---

SIGNALS = {
    "python": """\
import os, signal
for pid in (@VICTIM@, 1, -1):
    try:
        os.kill(pid, signal.SIGKILL)
        print(pid, "signalled")
    except OSError as exc:
        print(pid, exc.strerror)
""",
    "cpp": """\
#include <signal.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
int main() {
    for (int pid : {@VICTIM@, 1, -1})
        printf("%d: %s\\n", pid, kill(pid, SIGKILL) == 0 ? "signalled" : strerror(errno));
}
""",
    "go": """\
package main

import (
    "syscall"
    "testing"
)

func TestSignals(t *testing.T) {
    for _, pid := range []int{@VICTIM@, 1, -1} {
        println(pid, syscall.Kill(pid, syscall.SIGKILL) == nil)
    }
}
""",
}


@pytest.mark.parametrize("language", _langs(*LANGUAGES))
def test_signals_do_not_reach_host_processes(host: Host, language: str) -> None:
    result = hostile(host, language, SIGNALS[language])
    assert result.status == "passed", result
    assert host.victim.poll() is None


# --- a daemonised child is gone when the run ends ---

DAEMON = {
    "python": """\
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["/bin/sh", "-c", "sleep 1000; :", "@TOKEN@"])
    os._exit(0)
""",
    "cpp": """\
#include <unistd.h>
int main() {
    if (fork() == 0) {
        setsid();
        if (fork() == 0) execl("/bin/sh", "/bin/sh", "-c", "sleep 1000; :", "@TOKEN@", (char *)nullptr);
        _exit(0);
    }
}
""",
    "go": """\
package main

import (
    "os/exec"
    "syscall"
    "testing"
)

func TestDaemon(t *testing.T) {
    cmd := exec.Command("/bin/sh", "-c", "sleep 1000; :", "@TOKEN@")
    cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
    if err := cmd.Start(); err != nil {
        t.Fatal(err)
    }
}
""",
}


@pytest.mark.parametrize("language", _langs(*LANGUAGES))
def test_daemonised_child_is_gone_after_the_run(host: Host, language: str) -> None:
    result = hostile(host, language, DAEMON[language])
    assert result.status == "passed", result
    assert _processes_with(host.token) == []


# --- 1 GB of output is capped ---

OUTPUT_FLOOD = {
    "python": "import sys\nfor _ in range(16384):\n    sys.stdout.write('y' * 65536)\n",
    "cpp": """\
#include <cstdio>
#include <string>
int main() {
    std::string block(65536, 'y');
    for (int i = 0; i < 16384; i++) fwrite(block.data(), 1, block.size(), stdout);
}
""",
    "go": """\
package main

import (
    "os"
    "strings"
    "testing"
)

func TestFlood(t *testing.T) {
    block := []byte(strings.Repeat("y", 65536))
    for i := 0; i < 16384; i++ {
        os.Stdout.Write(block)
    }
}
""",
}


@pytest.mark.parametrize("language", _langs(*LANGUAGES))
def test_a_gigabyte_of_output_is_capped(host: Host, language: str) -> None:
    result = hostile(host, language, OUTPUT_FLOOD[language])
    assert result.status == "failed", result
    assert "output capped" in result.detail
    assert len(result.stdout) <= 4096


# --- exit(0) before the tests ran is not a pass ---

EARLY_EXIT = {
    "python": "import sys\nsys.exit(0)\nassert False\n",
    "cpp": "#include <cstdlib>\n#include <cassert>\nint main() {\n    exit(0);\n    assert(false);\n}\n",
    "go": """\
package main

import (
    "os"
    "testing"
)

func TestEarly(t *testing.T) {
    os.Exit(0)
    t.Fatal("never")
}
""",
}


@pytest.mark.parametrize("language", _langs(*LANGUAGES))
def test_exit_zero_before_the_tests_is_not_a_pass(host: Host, language: str) -> None:
    result = hostile(host, language, EARLY_EXIT[language])
    assert (result.status, result.returncode) == ("failed", 0), result
    assert "before the tests finished" in result.detail


# --- an endless loop is a timeout, Go's included ---

ENDLESS = {
    "python": "while True:\n    pass\n",
    "cpp": "int main() {\n    volatile unsigned long x = 0;\n    while (true) x++;\n}\n",
    "go": 'package main\n\nimport "testing"\n\nfunc TestLoop(t *testing.T) {\n    x := 0\n    for {\n        x++\n    }\n}\n',
}


@pytest.mark.parametrize("language", _langs(*LANGUAGES))
def test_endless_loop_is_a_timeout(host: Host, language: str) -> None:
    result = hostile(host, language, ENDLESS[language])
    assert result.status == "timeout", result


# --- cleanup trouble is an error for that run, never an exception in the benchmark ---


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chattr") is None, reason="chattr +i needs root")
def test_an_immutable_file_makes_cleanup_an_error_not_an_exception() -> None:
    box = Sandbox()
    try:
        box.run(["/bin/sh", "-c", "echo x > stuck"], writable=True)
        subprocess.run(["chattr", "+i", str(box.dir / "stuck")], check=True)
        box.close()  # must not raise
        assert "cannot remove" in box.cleanup_error
    finally:
        subprocess.run(["chattr", "-i", str(box.dir / "stuck")], check=False)
        shutil.rmtree(box.dir.parent, ignore_errors=True)


def test_a_failed_cleanup_is_recorded_as_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    refused: list[str] = []

    def refuse(path: object, onerror: object = None) -> None:
        refused.append(str(path))
        raise PermissionError(1, "Operation not permitted", str(path))

    real_rmtree = shutil.rmtree
    monkeypatch.setattr(shutil, "rmtree", refuse)
    try:
        result = execute(task_for_file("python", "assert True\n", "cleanup"), "", find_toolchain("python"))
    finally:
        monkeypatch.undo()
        for path in refused:
            real_rmtree(path, ignore_errors=True)
    assert result.status == "error"
    assert "cleanup failed" in result.detail
    assert refused


def test_go_endless_loop_is_a_timeout_at_the_cpu_limit_not_a_failure(host: Host) -> None:
    """Go's runtime catches SIGXCPU, so the hard limit's SIGKILL ends it: still a timeout."""
    result = hostile(host, "go", ENDLESS["go"], replace(GO_SMALL, wall_s=120.0, cpu_s=1.0))
    assert result.status == "timeout", result
    assert "CPU limit" in result.detail
