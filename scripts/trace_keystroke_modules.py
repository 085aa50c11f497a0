#!/usr/bin/env python3
"""Which codegeex_lsp modules one keystroke's inline completion runs through, per process.

Starts a real `codegeex-lsp serve` (worker backend, private worker) on a model given on the command
line (a tiny random model is enough: the path, not the weights, is measured), sends one warm-up and
then one measured `textDocument/inlineCompletion`, and prints the modules whose Python functions
were called between the request and its answer, in the server and in the worker. The processes are
profiled by a `sitecustomize` on PYTHONPATH (`sys.setprofile` + `threading.setprofile`), which
snapshots the call times of every codegeex_lsp function to a file every 0.3 s.

    python scripts/trace_keystroke_modules.py MODEL_DIR [--quant none] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from codegeex_lsp.lsp_client import LspClient

SITECUSTOMIZE = '''
import json, os, sys, threading, time
_out = os.environ.get("CODEGEEX_TRACE_OUT")
if _out:
    _seen = {}
    def _prof(frame, event, arg):
        if event == "call" and "codegeex_lsp" in frame.f_code.co_filename:
            _seen.setdefault(frame.f_code.co_filename, []).append(time.time())
    sys.setprofile(_prof)
    threading.setprofile(_prof)
    def _dump():
        while True:
            time.sleep(0.3)
            snap = {k: list(v) for k, v in list(_seen.items())}
            tmp = f"{_out}.{os.getpid()}.tmp"
            with open(tmp, "w") as fh:
                json.dump(snap, fh)
            os.replace(tmp, f"{_out}.{os.getpid()}")
    threading.Thread(target=_dump, daemon=True).start()
'''

FILE = "def mul(a, b):\n    \n"
SETTLE_S = 0.8  # longer than the snapshot interval, so the last calls are on disk


async def one_keystroke(command: list[str], log: Path) -> tuple[float, float]:
    client = LspClient()
    await client.start(command, log)
    await client.initialize({"debounce": {"minMs": 0, "maxMs": 0, "initialMs": 0}, "completion": {"maxTokens": 8}})
    while (await client.status())["state"] != "ready":
        await asyncio.sleep(0.2)
    client.open("file:///home/user/project/warm.py", "python", FILE)
    await asyncio.wrap_future(client.inline("file:///home/user/project/warm.py", 1, 4, invoked=True)[1])
    client.open("file:///home/user/project/measured.py", "python", FILE.replace("mul", "add"))
    await asyncio.sleep(SETTLE_S)
    started = time.time()
    await asyncio.wrap_future(client.inline("file:///home/user/project/measured.py", 1, 4, invoked=True)[1])
    ended = time.time()
    await asyncio.sleep(SETTLE_S)
    await client.stop()
    return started, ended


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--quant", default="none", choices=("none", "int4"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        runtime = Path(tmp) / "runtime"
        runtime.mkdir(mode=0o700)
        trace = Path(tmp) / "trace"
        os.environ.update(
            CODEGEEX_TRACE_OUT=str(trace), PYTHONPATH=str(site), CODEGEEX_LSP_RUNTIME_DIR=str(runtime)
        )
        command = [sys.executable, "-m", "codegeex_lsp.cli", "serve", "--model", args.model, "--quant", args.quant]
        command += ["--threads", "1", "--worker", "private", "--no-telemetry"]
        started, ended = asyncio.run(one_keystroke(command, Path(tmp) / "server.log"))
        per_process = {}
        for snapshot in sorted(Path(tmp).glob("trace.*")):
            if snapshot.suffix == ".tmp":
                continue
            calls = json.loads(snapshot.read_text())
            modules = sorted(
                path.split("codegeex_lsp/")[-1]
                for path, times in calls.items()
                if any(started <= t <= ended for t in times)
            )
            if modules:
                per_process[snapshot.suffix.lstrip(".")] = modules
    union = sorted({m for modules in per_process.values() for m in modules})
    if args.json:
        print(json.dumps({"processes": per_process, "union": union}, indent=1))
    else:
        for pid, modules in per_process.items():
            print(f"pid {pid}: {len(modules)} modules: {' '.join(modules)}")
        print(f"union: {len(union)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
