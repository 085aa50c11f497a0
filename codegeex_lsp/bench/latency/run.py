"""`codegeex-lsp bench latency`: the command line and the run (both sides, interleaved per session).

Our side is one `codegeex-lsp serve` process with the server's own defaults (model, weights,
budgets, debounce, backend); flags are passed only when given here. The peer is llama-server on the
same model's GGUF, driven as llama.vscode drives it (peer.py). Both are loaded before the replay;
sessions alternate which side goes first, so the load of a shared machine falls on both alike, and
only one side works at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from codegeex_lsp.bench.latency import memory, report
from codegeex_lsp.bench.latency.corpus import packaged_files
from codegeex_lsp.bench.latency.peer import LlamaServer, VscodeLlama
from codegeex_lsp.bench.latency.replay import replay_ours, replay_peer
from codegeex_lsp.bench.latency.stats import Request, summarize
from codegeex_lsp.bench.latency.typist import (
    CPS,
    MAX_KEYS_PER_SESSION,
    Session,
    make_sessions,
    schedule,
    split_keystrokes,
)
from codegeex_lsp.lsp_client import LspClient

DEFAULT_OUT = Path("test-artifacts/latency")
READY_TIMEOUT_S = 900.0
TAIL_S = 5.0
WARMUP = ("import os\n\n\ndef main():\n\n", "    path = os.getcwd()")


def serve_command(args: argparse.Namespace) -> list[str]:
    """`serve` with only the flags the user gave: otherwise exactly what `codegeex-lsp serve` does."""
    command = [sys.executable, "-m", "codegeex_lsp.cli", "serve"]
    for flag, value in (("--model", args.model), ("--quant", args.quant), ("--dtype", args.dtype)):
        if value is not None:
            command += [flag, value]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    if args.in_process:
        command.append("--in-process")
    return command


def init_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.debounce_ms is None:
        return {}
    ms = args.debounce_ms
    return {"debounce": {"minMs": ms, "maxMs": ms, "initialMs": ms}}


def warmup_session() -> Session:
    text, typed = WARMUP
    keys = schedule(split_keystrokes(typed), random.Random(0))
    return Session(-1, "warmup.py", "file:///bench/latency/warmup.py", "python", text, 4, keys, typed)


async def start_ours(args: argparse.Namespace, out: Path, log) -> tuple[LspClient, dict[str, Any]]:
    client = LspClient("codegeex-lsp-bench")
    await client.start(serve_command(args), out / "server.log", dict(os.environ))
    await client.initialize(init_options(args))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        status = await client.status()
        if status.get("state") == "ready":
            break
        if status.get("state") == "error":
            raise SystemExit(f"our server: the model failed to load: {status.get('error')}")
        if time.monotonic() > deadline:
            raise SystemExit(f"our server: model not ready after {READY_TIMEOUT_S:.0f} s")
        await asyncio.sleep(1.0)
    log(f"ours: {status.get('model')} ready ({status.get('format')}, load {status.get('loadSeconds')} s)")
    return client, status


async def start_peer(args: argparse.Namespace, out: Path, log) -> tuple[LlamaServer | None, str | None]:
    """The peer's server, or (None, why not)."""
    if args.no_peer:
        return None, "not run (--no-peer)"
    from codegeex_lsp.bench import llama_cpp

    try:
        binary = Path(args.llama_server) if args.llama_server else llama_cpp.binary("llama-server")
        env = llama_cpp.run_env() if not args.llama_server else dict(os.environ)
    except llama_cpp.LlamaCppMissing as exc:
        return None, f"llama-server missing: {exc}"
    try:
        from codegeex_lsp.bench.infill.peer import model_gguf
        from codegeex_lsp.config import DEFAULT_MODEL

        gguf = Path(args.peer_gguf) if args.peer_gguf else model_gguf(args.model or DEFAULT_MODEL)[0]
    except Exception as exc:
        return None, f"no GGUF for the model: {exc}"
    server = LlamaServer(binary, gguf, env, out / "llama-server.log", threads=args.threads or 0)
    try:
        await server.wait_ready()
    except RuntimeError as exc:
        server.stop()
        return None, str(exc)
    log(f"peer: llama-server ready on {gguf.name}")
    return server, None


async def run(args: argparse.Namespace, log) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    files = [Path(f) for f in args.files] if args.files else packaged_files()
    sessions = make_sessions(files, args.keystrokes, args.seed, args.cps, args.session_keys)
    log(f"{len(sessions)} sessions, {sum(len(s.keys) for s in sessions)} keystrokes per side")
    client, status = await start_ours(args, out, log)
    server, peer_reason = await start_peer(args, out, log)
    http = server.client() if server is not None else None
    peer = VscodeLlama(http, n_cmpl=args.peer_n_cmpl, greedy=args.peer_greedy) if http is not None else None
    sampler = memory.Sampler(args.memory_interval_s)
    try:
        await replay_ours(client, warmup_session(), args.tail_s)
        if peer is not None:
            await replay_peer(peer, warmup_session(), args.tail_s)
        status = await client.status()
        counters_start = dict(status.get("counters", {}))
        sampler.server_pid = client.pid
        sampler.worker_pid = (status.get("backend") or {}).get("pid")
        sampler.peer_pid = server.proc.pid if server is not None else None
        ours: list[Request] = []
        theirs: list[Request] = []
        peer_first_tokens: list[float] = []
        load_start = os.getloadavg()
        sampler.start()
        for session in sessions:
            sampler.session = session.index + 1
            sides = ["ours", "peer"] if session.index % 2 == 0 else ["peer", "ours"]
            for side in sides:
                if side == "ours":
                    ours += await replay_ours(client, session, args.tail_s, args.prewarm)
                elif peer is not None:
                    requests, first = await replay_peer(peer, session, args.tail_s, args.prewarm)
                    theirs += requests
                    peer_first_tokens += first
            log(
                f"session {session.index + 1}/{len(sessions)} ({Path(session.path).name}, {len(session.keys)} keys)"
            )
        await sampler.stop()
        status = await client.status()
        counters = {k: v - counters_start.get(k, 0) for k, v in status.get("counters", {}).items()}
        summary_ours = summarize(ours, [r.first_token_ms for r in ours if r.first_token_ms is not None])
        summary_ours["server_counters"] = counters
        summary_peer = None
        if peer is not None:
            summary_peer = summarize(theirs, peer_first_tokens)
            summary_peer["background_infills"] = len(peer.background_infills)
        status.pop("recentDecodes", None)
        meta = {
            "command": "codegeex-lsp bench latency " + " ".join(args.argv),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "serve": serve_command(args)[3:],
            "init_options": init_options(args),
            "server_status": status,
            "peer_command": server.command if server is not None else None,
            "peer_n_cmpl": args.peer_n_cmpl,
            "peer_greedy": args.peer_greedy,
            "files": [str(f) for f in files],
            "sessions": len(sessions),
            "keystrokes": sum(len(s.keys) for s in sessions),
            "cps": args.cps,
            "seed": args.seed,
            "tail_s": args.tail_s,
            "cpu_count": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        }
        return {
            "meta": meta,
            "ours": summary_ours,
            "peer": summary_peer,
            "peer_reason": peer_reason,
            "memory": {
                "samples": [asdict(s) for s in sampler.samples],
                "flatness": memory.flatness(sampler.samples, args.fill_docs),
            },
            "requests": {
                "ours": [_row(r) for r in ours],
                "peer": [_row(r) for r in theirs],
            },
        }
    finally:
        await client.stop()
        if http is not None:
            await http.aclose()
        if server is not None:
            server.stop()


def _row(r: Request) -> dict[str, Any]:
    row = asdict(r)
    row.pop("rest")
    row["outcome"] = r.outcome
    row["latency_ms"] = None if r.latency_ms is None else round(r.latency_ms, 2)
    return row


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="codegeex-lsp bench latency",
        description="keystroke latency and usefulness through a real `serve`, side by side with llama.vscode's stack",
    )
    p.add_argument("--files", nargs="+", help="source files to replay (default: the packaged corpus)")
    p.add_argument("--keystrokes", type=int, default=600, help="keystrokes per side (default: %(default)s)")
    p.add_argument(
        "--session-keys", type=int, default=MAX_KEYS_PER_SESSION, help="keystrokes per session at most"
    )
    p.add_argument(
        "--cps", type=float, default=CPS, help="typing speed, characters per second (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tail-s", type=float, default=TAIL_S, help="wait for a session's last answer (s)")
    p.add_argument("--no-prewarm", dest="prewarm", action="store_false", help="type into a cold document")
    group = p.add_argument_group("our server (unset: the server's default)")
    group.add_argument("--model")
    group.add_argument("--quant", choices=["none", "int4"])
    group.add_argument("--dtype", choices=["auto", "bfloat16", "float32"])
    group.add_argument("--threads", type=int)
    group.add_argument("--in-process", action="store_true", help="serve --in-process")
    group.add_argument(
        "--debounce-ms", type=int, help="a fixed debounce instead of the server's adaptive one"
    )
    group = p.add_argument_group("the peer (llama-server + llama.vscode's provider)")
    group.add_argument("--no-peer", action="store_true", help="only our server")
    group.add_argument(
        "--llama-server", help="a llama-server binary (default: scripts/install-llama-cpp's build)"
    )
    group.add_argument("--peer-gguf", help="the peer's model file (default: the GGUF of our server's model)")
    group.add_argument("--peer-n-cmpl", type=int, default=1, help="completions per request (llama.vscode: 3)")
    group.add_argument("--peer-greedy", action="store_true", help="top-1 instead of llama.vscode's sampling")
    group = p.add_argument_group("memory")
    group.add_argument("--memory-interval-s", type=float, default=5.0, help="RSS sampling interval")
    group.add_argument(
        "--fill-docs", type=int, default=memory.FILL_DOCS, help="documents that fill the KV budget"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report directory (default: %(default)s)")
    p.add_argument("--json-out", type=Path, help="the summaries and every request as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = asyncio.run(run(args, log))
    text = report.write(result, args.out)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(text)
    return 0
