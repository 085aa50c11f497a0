"""Where the editors and the server live, and how the tests start the server.

The editors come from `scripts/install-editors` (run by `make test`): code-server and
playwright-core under `.e2e/vscode`, the extension's npm packages under
`editor_clients/vscode/node_modules`, and nvim + pynvim in the venv. A test whose editor is not
installed is skipped with the command that installs it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
INSTALL_HINT = "run scripts/install-editors (make test does)"

# A real file with code before and after add(), for typing at the start of its body mid-file: both
# editors' suites type `r` there with the real model and must see `return …` (issue 17, item 7).
MID_BODY_FILE = '''import math


def circle_area(radius: float) -> float:
    """The area of a circle."""
    return math.pi * radius ** 2


def add(a, b):
    total = a + b
    return total


def main() -> None:
    print(add(1, 2))
'''


def venv_bin(name: str) -> Path:
    return Path(sys.executable).parent / name


@functools.cache
def serve_flags() -> tuple[str, ...]:
    """Flags that keep the server's model process private to it, so nothing outlives a test
    (servers whose `serve` has no `--worker` option run the model in-process anyway)."""
    help_text = subprocess.run(
        [str(venv_bin("codegeex-lsp")), "serve", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    return ("--worker", "private") if "--worker" in help_text else ()


def tiny_server_args(model: Path) -> list[str]:
    """`codegeex-lsp serve` arguments for the tiny model: float32, one torch thread (shared cores)."""
    return ["--model", str(model), "--dtype", "float32", "--quant", "none", "--threads", "1", *serve_flags()]


def real_server_args() -> list[str]:
    """The embedded default model, on one torch thread."""
    return ["--threads", "1", *serve_flags()]


def require(path: Path | str | None, what: str) -> None:
    if path is None or not Path(path).exists():
        pytest.skip(f"{what} is not installed: {INSTALL_HINT}")


def which(name: str) -> str | None:
    return shutil.which(name)


def stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End a process started with `start_new_session=True` and everything it started: SIGTERM to
    the group, a grace period for children to exit with it, then SIGKILL to what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)  # anyone left in the group?
        except ProcessLookupError:
            break
        proc.poll()
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
