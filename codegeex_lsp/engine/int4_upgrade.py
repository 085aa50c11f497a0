"""int4 by default without a blocking first start: serve what is built while better int4 builds.

int4 comes in rungs (`load.INT4_LADDER`): a first recipe that builds in about 2 minutes, then a
refined one calibrated on more code. A model slot (the worker's, or the in-process server's) that
is asked for int4 serves at once what it has: the float weights when no rung is built, else the
highest rung. `Int4Upgrade.run` then builds each missing rung in a child process (niced, so typing
stays responsive; its fp32 model and Hessians never live in the serving process; a crash there
costs nothing here), loads the result and hands it to the slot's `switch`, which swaps its
services. The editor sees each rung as one `$/progress` task (`protocol.Progress`, task INT4_BUILD)
ending with the new `quant`. A build takes its checkpoint's lock (`load.build_lock`), so two workers
or a CLI run never build it twice.

Run as `python -m codegeex_lsp.engine.int4_upgrade '<EngineOptions as JSON>' <recipe name>`, it is
that child: one JSON line per progress message on stdout, the tqdm bar on stderr.
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
    from codegeex_lsp.engine.load import Int4Recipe, LoadedModel

log = logging.getLogger(__name__)

TITLE = "codegeex-lsp: building int4 weights (once)"
REFINE_TITLE = "codegeex-lsp: refining int4 weights (once)"
CHILD_NICE = 10
_PERCENT = re.compile(r"\((\d{1,3})%\)")
_STDERR_TAIL = 2000  # characters of a failed build's stderr kept for its message

Emit = Callable[[Progress], None]
Switch = Callable[["LoadedModel"], None]


def plan(
    options: EngineOptions, emit: Emit, progress: Callable[[str], None]
) -> tuple[EngineOptions, Int4Upgrade | None]:
    """What to load now (never building in the foreground), and the background builds to start
    once it serves (None: nothing to build): with no rung built, the same model's float weights
    serve meanwhile; with a lower rung built, that rung serves while the higher ones build."""
    if options.quant != "int4":
        return options, None
    from codegeex_lsp.engine.load import INT4_LADDER, int4_missing

    missing = int4_missing(options, progress)
    if not missing:
        return options, None
    if len(missing) == len(INT4_LADDER):
        progress("no int4 weights yet: serving bf16 while they build in the background")
        return dataclasses.replace(options, quant="none"), Int4Upgrade(options, emit, missing)
    progress(f"refining the int4 weights in the background ({missing[-1].name})")
    return dataclasses.replace(options, int4_build="first"), Int4Upgrade(options, emit, missing)


class Int4Upgrade:
    """Background int4 builds for `options`, one per rung of `rungs` (in order), each reported
    through `emit` as one task, begin to end."""

    def __init__(self, options: EngineOptions, emit: Emit, rungs: list[Int4Recipe]) -> None:
        self.options = options
        self.rungs = rungs
        self._emit = emit
        self._proc: subprocess.Popen[str] | None = None
        self._stopped = threading.Event()

    def run(self, switch: Switch) -> None:
        """Build each rung (blocking; call on a thread), load it and hand it to `switch`, then tell
        the clients. Stops at a failed or stopped build: the `end` message says why, and what
        serves keeps serving."""
        from codegeex_lsp.engine.load import load_model

        serving = "bf16" if len(self.rungs) == len(_ladder()) else "the first int4 weights"
        for recipe in self.rungs:
            first = recipe == _ladder()[0]
            title = TITLE if first else REFINE_TITLE
            what = "building the int4 weights" if first else f"refining the int4 weights ({recipe.name})"
            self._report("begin", f"{what} in the background; serving {serving} until then", 0, title)
            try:
                self._build(recipe, title)
                if self._stopped.is_set():
                    return
                options = dataclasses.replace(self.options, int4_build="first")  # loads what was built
                loaded = load_model(options, lambda message, t=title: self._report("report", message, -1, t))
            except Exception as exc:  # a failed build must never take the serving model down
                if not self._stopped.is_set():
                    log.warning("int4 build failed: %s", exc)
                    self._report("end", f"int4 build failed, serving {serving}: {exc}", -1, title)
                return
            switch(loaded)
            serving = loaded.quant
            self._emit(
                Progress(
                    f"switched to {loaded.quant}",
                    task=INT4_BUILD,
                    stage="end",
                    title=title,
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

    def _build(self, recipe: Int4Recipe, title: str) -> None:
        options = json.dumps(dataclasses.asdict(self.options))
        with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
            self._proc = proc = subprocess.Popen(
                [sys.executable, "-m", "codegeex_lsp.engine.int4_upgrade", options, recipe.name],
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
                self._report("report", message, percentage, title)
            code = proc.wait()
            if code != 0 and not self._stopped.is_set():
                stderr.seek(0)
                tail = stderr.read()[-_STDERR_TAIL:].strip().splitlines()
                reason = tail[-1] if tail else f"exit code {code}"
                raise RuntimeError(f"the build process failed ({reason})")

    def _report(self, stage: str, message: str, percentage: int, title: str) -> None:
        self._emit(Progress(message, task=INT4_BUILD, stage=stage, title=title, percentage=percentage))


def _ladder() -> tuple[Int4Recipe, ...]:
    from codegeex_lsp.engine import load

    return load.INT4_LADDER


def _child(argv: list[str]) -> int:
    """The build process: quantize one rung once into the cache, one JSON line per progress message."""
    from codegeex_lsp.engine.load import build_int4_rung
    from codegeex_lsp.errors import CodegeexError

    with contextlib.suppress(OSError):
        os.nice(CHILD_NICE)
    options = EngineOptions(**json.loads(argv[0]))
    recipe = next((r for r in _ladder() if r.name == argv[1]), None)
    if recipe is None:
        print(f"error: no int4 recipe named {argv[1]!r}", file=sys.stderr)
        return 1

    def progress(message: str) -> None:
        match = _PERCENT.search(message)
        step = {"message": message, "percentage": int(match.group(1)) if match else -1}
        print(json.dumps(step), flush=True)

    try:
        build_int4_rung(options, recipe, progress)
    except CodegeexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
