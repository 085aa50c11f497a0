"""int4 by default without a blocking first start: serve bf16 while the int4 build runs, then switch.

A model slot (the worker's, or the in-process server's) that is asked for int4 and finds no
checkpoint loads the float weights instead and serves them at once; `Int4Upgrade.run` then builds
the checkpoint in a child process (niced, so typing stays responsive; its fp32 model and Hessians
never live in the serving process; a crash there costs nothing here), loads the result and hands it
back. The slot swaps its services and the editor sees the switch as one `$/progress` task
(`protocol.Progress`, task INT4_BUILD) ending with the new `quant`. The build takes the
checkpoint's lock (`load.build_lock`), so two workers or a CLI run never build it twice.

Run as `python -m codegeex_lsp.engine.int4_upgrade '<EngineOptions as JSON>'`, it is that child:
one JSON line per progress message on stdout, the tqdm bar on stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.protocol import INT4_BUILD, Progress

if TYPE_CHECKING:
    from codegeex_lsp.engine.load import LoadedModel

log = logging.getLogger(__name__)

TITLE = "codegeex-lsp: building int4 weights (once)"
CHILD_NICE = 10
_PERCENT = re.compile(r"\((\d{1,3})%\)")
_STDERR_TAIL = 2000  # characters of a failed build's stderr kept for its message

Emit = Callable[[Progress], None]


def needs_build(options: EngineOptions, progress: Callable[[str], None] | None = None) -> bool:
    """Whether `options` asks for int4 weights that are not built yet (resolves the model once)."""
    if options.quant != "int4":
        return False
    from codegeex_lsp.engine.load import int4_checkpoint

    return not int4_checkpoint(options, progress).is_file()


def plan(
    options: EngineOptions, emit: Emit, progress: Callable[[str], None]
) -> tuple[EngineOptions, Int4Upgrade | None]:
    """What to load now, and the background build to start once it serves (None: nothing to build).
    Without its int4 checkpoint, the same model's float weights serve meanwhile."""
    if not needs_build(options, progress):
        return options, None
    progress("no int4 weights yet: serving bf16 while they build in the background")
    return dataclasses.replace(options, quant="none"), Int4Upgrade(options, emit)


class Int4Upgrade:
    """One background int4 build for `options`, reported through `emit` (one task, begin to end)."""

    def __init__(self, options: EngineOptions, emit: Emit) -> None:
        self.options = options
        self._emit = emit
        self._proc: subprocess.Popen[str] | None = None
        self._stopped = threading.Event()

    def run(self) -> LoadedModel | None:
        """Build (blocking; call on a thread), then load the checkpoint. None when the build failed
        or was stopped: the `end` message says why, and the float weights keep serving."""
        self._report("begin", "building the int4 weights in the background; serving bf16 until then", 0)
        try:
            self._build()
            if self._stopped.is_set():
                return None
            from codegeex_lsp.engine.load import load_model

            return load_model(self.options, lambda message: self._report("report", message))
        except Exception as exc:  # a failed build must never take the serving model down
            if not self._stopped.is_set():
                log.warning("int4 build failed: %s", exc)
                self._report("end", f"int4 build failed, serving bf16: {exc}")
            return None

    def finished(self, loaded: LoadedModel) -> None:
        """Tell the clients the switch happened (after the slot swapped its services)."""
        self._emit(
            Progress(
                f"switched to {loaded.quant}",
                task=INT4_BUILD,
                stage="end",
                title=TITLE,
                percentage=100,
                quant=loaded.quant,
            )
        )

    def stop(self) -> None:
        """End the build now (the process is exiting)."""
        self._stopped.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _build(self) -> None:
        options = json.dumps(dataclasses.asdict(self.options))
        with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
            self._proc = proc = subprocess.Popen(
                [sys.executable, "-m", "codegeex_lsp.engine.int4_upgrade", options],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    step = json.loads(line)
                    message, percentage = str(step["message"]), int(step["percentage"])
                except (ValueError, KeyError, TypeError):
                    continue  # a stray print in the child is not a progress step
                self._report("report", message, percentage)
            code = proc.wait()
            if code != 0 and not self._stopped.is_set():
                stderr.seek(0)
                tail = stderr.read()[-_STDERR_TAIL:].strip().splitlines()
                reason = tail[-1] if tail else f"exit code {code}"
                raise RuntimeError(f"the build process failed ({reason})")

    def _report(self, stage: str, message: str, percentage: int = -1) -> None:
        self._emit(Progress(message, task=INT4_BUILD, stage=stage, title=TITLE, percentage=percentage))


def _child(argv: list[str]) -> int:
    """The build process: quantize once into the cache, one JSON line per progress message."""
    from codegeex_lsp.engine.load import load_model
    from codegeex_lsp.errors import CodegeexError

    with contextlib.suppress(OSError):
        os.nice(CHILD_NICE)
    options = EngineOptions(**json.loads(argv[0]))

    def progress(message: str) -> None:
        match = _PERCENT.search(message)
        step = {"message": message, "percentage": int(match.group(1)) if match else -1}
        print(json.dumps(step), flush=True)

    try:
        load_model(dataclasses.replace(options, quant="int4"), progress)
    except CodegeexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
