"""`codegeex-lsp bench latency`: keystroke latency through real `codegeex-lsp serve` processes.

Source files (this package's `bench/data/` and files of the Python standard library, several
languages) are replayed as keystrokes: a few lines are cut out of a file, the file is opened without
them, and they are typed back in at human speed. Each keystroke is what an editor sends: a
`didChange` for the typed text, `$/cancelRequest` for the previous request still in flight, and a
`textDocument/inlineCompletion` request (trigger Automatic). A line break and its indentation are
one keystroke (the editor's auto-indent).

One server process runs per configuration (prefix KV reuse and prompt-lookup speculation each on and
off, set through the engine's environment switches), all loaded before the replay starts. Replay
sessions are interleaved across the configurations (the order rotates per session), so the load
from other processes on a shared machine falls on all of them alike; only one server works at a
time.

Measured per configuration:

- keystroke -> first token: the server's own record of each decode (`codegeex/status`
  `recentDecodes`): from the request's arrival (the transport from this client is well under a
  millisecond) through the debounce, the prompt and the prefill to the first sampled token; and
  the same without the debounce and queueing ("compute");
- keystroke -> final suggestion: measured here, from sending the request to its answer, for
  requests answered with a suggestion (decoded by the model, or served from the completion cache
  or typed-through);
- percentiles p50/p95/p99, cache and typed-through hit rates, cancellations, prefill and reused
  tokens per decode, speculative acceptance, and the resident memory of each server and its model
  worker before and after the replay.

Written to `--out` (default `test-artifacts/latency/`): `latency.md` (also printed), `latency.png`
(histograms) and, with `--json-out`, every request and decode record.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).with_name("data")
DEFAULT_OUT = Path("test-artifacts/latency")
# Standard-library modules replayed next to the shipped files (the ones this Python has are used).
STDLIB_FILES = ("textwrap.py", "shlex.py", "heapq.py", "fnmatch.py", "colorsys.py", "graphlib.py")
LANGUAGE_IDS = {
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
}

# name -> (prefix KV reuse, speculation); `full` is what users get.
CONFIGS: dict[str, tuple[bool, bool]] = {
    "full": (True, True),
    "no-reuse": (False, True),
    "no-spec": (True, False),
    "off": (False, False),
}
KV_REUSE_ENV = "CODEGEEX_LSP_KV_REUSE"  # the engine's switches (engine/service.py)
SPECULATIVE_ENV = "CODEGEEX_LSP_SPECULATIVE"

# The issue's targets (2 cores, embedded model in int4, 1,024-token context, single line).
TARGETS_MS = {"first token p50": 80.0, "final p50": 300.0, "final p95": 600.0}

# Typing model: gaps between keystrokes are log-normal around 1/cps; a typist pauses after a line
# break (reading the suggestion) and sometimes after punctuation.
GAP_SIGMA = 0.35
MIN_GAP_S, MAX_GAP_S = 0.04, 0.9
LINE_PAUSE_S = 0.8
PUNCT_PAUSE_S, PUNCT_PAUSE_P = 0.45, 0.2
PAUSE_AFTER = "(.=:,"
MAX_KEYS_PER_SESSION = 60
SESSION_TAIL_S = 3.0  # after the last keystroke: time for its answer (more with --tail-s)
READY_TIMEOUT_S = 900.0
STDERR_LIMIT = 200_000


# -- the keystroke script ------------------------------------------------------------------------


@dataclass(frozen=True)
class Keystroke:
    text: str  # inserted at the cursor
    at_s: float  # since the session's start


@dataclass(frozen=True)
class Session:
    """Type `keys` into `text` (a source file with some lines cut out) at `line`, column 0."""

    index: int
    path: str
    uri: str
    language_id: str
    text: str
    line: int
    keys: tuple[Keystroke, ...]


def split_keystrokes(typed: str) -> list[str]:
    """One keystroke per character, except a line break plus the next line's indentation (auto-indent)."""
    keys: list[str] = []
    for index, line in enumerate(typed.split("\n")):
        indent = len(line) - len(line.lstrip(" \t"))
        head = ("\n" if index > 0 else "") + line[:indent]
        if head:
            keys.append(head)
        keys.extend(line[indent:])
    return keys


def schedule(keys: Sequence[str], rng: random.Random, cps: float) -> tuple[Keystroke, ...]:
    mu = math.log(1.0 / cps) - GAP_SIGMA**2 / 2  # the mean gap is 1/cps
    at = 0.0
    out = []
    previous = ""
    for key in keys:
        gap = min(max(rng.lognormvariate(mu, GAP_SIGMA), MIN_GAP_S), MAX_GAP_S)
        if previous.startswith("\n"):
            gap += LINE_PAUSE_S
        elif previous and previous[-1] in PAUSE_AFTER and rng.random() < PUNCT_PAUSE_P:
            gap += PUNCT_PAUSE_S
        at += gap
        out.append(Keystroke(key, round(at, 4)))
        previous = key
    return tuple(out)


def default_files() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    shipped = sorted(p for p in DATA_DIR.iterdir() if p.suffix in LANGUAGE_IDS)
    return shipped + [stdlib / name for name in STDLIB_FILES if (stdlib / name).is_file()]


def make_sessions(
    files: Sequence[Path], n_keys: int, seed: int, cps: float, max_keys: int = MAX_KEYS_PER_SESSION
) -> list[Session]:
    """Sessions of at most `max_keys` keystrokes, cycling over `files`, `n_keys` in all."""
    rng = random.Random(seed)
    sources = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        starts = [i for i in range(1, len(lines) - 1) if lines[i].strip() and lines[i].endswith("\n")]
        if starts:
            sources.append((path, lines, starts))
    if not sources:
        raise SystemExit("no usable source files")
    rng.shuffle(sources)
    sessions: list[Session] = []
    total = 0
    while total < n_keys:
        path, lines, starts = sources[len(sessions) % len(sources)]
        start = rng.choice(starts)
        end = start + 1
        while end < len(lines) - 1 and len(split_keystrokes("".join(lines[start : end + 1]))) <= max_keys:
            end += 1
        typed = "".join(lines[start:end]).rstrip("\n")
        keys = split_keystrokes(typed)[: min(max_keys, n_keys - total)]
        if not keys:
            continue
        before, after = "".join(lines[:start]), "".join(lines[end:])
        index = len(sessions)
        sessions.append(
            Session(
                index=index,
                path=str(path),
                uri=f"file:///bench/latency/{index}/{path.name}",
                language_id=LANGUAGE_IDS.get(path.suffix, "plaintext"),
                text=before + "\n" + after,
                line=start,
                keys=schedule(keys, rng, cps),
            )
        )
        total += len(keys)
    return sessions


# -- a small LSP client over stdio ---------------------------------------------------------------


class LspClient:
    """JSON-RPC over a server's stdin/stdout: requests as futures, server requests answered null."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.ensure_future(self._read_loop())

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> tuple[int, asyncio.Future[dict[str, Any]]]:
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        self._send({"id": self._next_id, "method": method, "params": params})
        return self._next_id, future

    async def call(self, method: str, params: Any, timeout_s: float = 60.0) -> Any:
        _id, future = self.request(method, params)
        message = await asyncio.wait_for(future, timeout_s)
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message.get("result")

    async def _read_loop(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                length = None
                while True:
                    line = await stdout.readline()
                    if not line:
                        return
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.decode("ascii").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                if length is None:
                    continue
                message = json.loads(await stdout.readexactly(length))
                if "method" in message and "id" in message:  # a server -> client request
                    result = (
                        [None] * len(message["params"]["items"])
                        if message["method"] == "workspace/configuration"
                        else None
                    )
                    self._send({"id": message["id"], "result": result})
                elif "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("server closed its stdout"))


@dataclass
class Server:
    """One `codegeex-lsp serve` process for one configuration."""

    name: str
    reuse: bool
    speculative: bool
    proc: asyncio.subprocess.Process | None = None
    client: LspClient | None = None
    worker_pid: int | None = None
    counters_start: dict[str, int] = field(default_factory=dict)
    rss_start_mib: float = 0.0


def _serve_command(args: argparse.Namespace) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "codegeex_lsp.cli",
        "serve",
        "--model",
        args.model,
        "--dtype",
        args.dtype,
        "--quant",
        args.quant,
    ]
    command += ["--threads", str(args.threads)]
    command += ["--in-process"] if args.in_process else ["--worker", "private"]
    return command


def _init_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "context": {"prefixTokens": args.prefix_tokens, "suffixTokens": args.suffix_tokens},
        "completion": {"maxTokensLine": args.max_tokens_line, "maxTokensBlock": args.max_tokens_block},
    }
    if args.debounce_ms is not None:
        ms = args.debounce_ms
        options["debounce"] = {"minMs": ms, "maxMs": ms, "initialMs": ms}
    return options


async def start_server(server: Server, args: argparse.Namespace, out: Path) -> None:
    env = {
        **os.environ,
        KV_REUSE_ENV: "1" if server.reuse else "0",
        SPECULATIVE_ENV: "1" if server.speculative else "0",
    }
    stderr = open(out / f"server-{server.name}.log", "wb")  # noqa: SIM115 - the process owns it
    server.proc = await asyncio.create_subprocess_exec(
        *_serve_command(args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env=env,
        limit=1 << 24,
    )
    stderr.close()
    server.client = LspClient(server.proc)
    capabilities = {
        "general": {"positionEncodings": ["utf-16"]},
        "textDocument": {"synchronization": {}, "inlineCompletion": {}},
        "window": {"workDoneProgress": False},
    }
    await server.client.call(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": None,
            "capabilities": capabilities,
            "initializationOptions": _init_options(args),
        },
    )
    server.client.notify("initialized", {})


async def wait_ready(server: Server, timeout_s: float) -> dict[str, Any]:
    assert server.client is not None
    deadline = time.monotonic() + timeout_s
    while True:
        status = await server.client.call("codegeex/status", None)
        if status.get("state") == "ready":
            server.worker_pid = (status.get("backend") or {}).get("pid")
            return status
        if status.get("state") == "error":
            raise SystemExit(f"server {server.name}: model failed to load: {status.get('error')}")
        if time.monotonic() > deadline:
            raise SystemExit(f"server {server.name}: model not ready after {timeout_s:.0f} s")
        await asyncio.sleep(1.0)


async def stop_server(server: Server) -> None:
    if server.client is None or server.proc is None:
        return
    with contextlib.suppress(Exception):
        await server.client.call("shutdown", None, timeout_s=10.0)
        server.client.notify("exit", None)
    try:
        await asyncio.wait_for(server.proc.wait(), 15.0)
    except TimeoutError:
        server.proc.kill()
        await server.proc.wait()


def rss_mib(*pids: int | None) -> float:
    """Resident memory of the processes, in MiB (0 for those gone)."""
    total = 0
    for pid in pids:
        if pid is None:
            continue
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


# -- replay --------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    config: str
    session: int
    key: int
    request_id: str
    sent_s: float
    latency_ms: float | None = None
    outcome: str = "pending"  # suggestion | empty | cancelled | error | timeout
    chars: int = 0


def _advance(line: int, col: int, text: str) -> tuple[int, int]:
    """The cursor after inserting `text` (columns in UTF-16 code units)."""
    breaks = text.count("\n")
    tail = text.rsplit("\n", 1)[-1]
    width = len(tail.encode("utf-16-le")) // 2
    return (line + breaks, width) if breaks else (line, col + width)


def _outcome(message: dict[str, Any]) -> tuple[str, int]:
    if "error" in message:
        return ("cancelled", 0) if message["error"].get("code") == -32800 else ("error", 0)
    result = message.get("result")
    items = result.get("items", []) if isinstance(result, dict) else (result or [])
    text = ""
    for item in items:
        insert = item.get("insertText")
        text = insert if isinstance(insert, str) else (insert or {}).get("value", "")
        if text:
            break
    return ("suggestion", len(text)) if text else ("empty", 0)


async def replay(
    server: Server, session: Session, tail_s: float, prewarm: bool = False
) -> list[RequestRecord]:
    client = server.client
    assert client is not None
    loop = asyncio.get_running_loop()
    uri = session.uri
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": session.language_id, "version": 1, "text": session.text}},
    )
    records: list[RequestRecord] = []
    futures: list[asyncio.Future[dict[str, Any]]] = []
    line, col, version = session.line, 0, 1
    if prewarm:  # the user opened the file and paused: one invoked completion, not measured
        _id, future = client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": 0},
                "context": {"triggerKind": 1},
            },
        )
        await asyncio.wait([future], timeout=tail_s)
    in_flight: tuple[int, asyncio.Future[dict[str, Any]]] | None = None
    started = loop.time() + 0.05
    for index, key in enumerate(session.keys):
        delay = started + key.at_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight is not None and not in_flight[1].done():
            client.notify("$/cancelRequest", {"id": in_flight[0]})  # as VS Code does on a new keystroke
        version += 1
        position = {"line": line, "character": col}
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": position, "end": position}, "text": key.text}],
            },
        )
        line, col = _advance(line, col, key.text)
        rid, future = client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": col},
                "context": {"triggerKind": 2},
            },
        )
        record = RequestRecord(server.name, session.index, index, f"inline#{rid}", loop.time())

        def done(future: asyncio.Future[dict[str, Any]], record: RequestRecord = record) -> None:
            record.latency_ms = (loop.time() - record.sent_s) * 1e3
            if future.cancelled() or future.exception() is not None:
                record.outcome = "error"
                return
            record.outcome, record.chars = _outcome(future.result())

        future.add_done_callback(done)
        records.append(record)
        futures.append(future)
        in_flight = (rid, future)
    _finished, pending = await asyncio.wait(futures, timeout=tail_s) if futures else (set(), set())
    for future in pending:
        future.cancel()
    for record in records:
        if (
            record.outcome == "error"
            and record.latency_ms is not None
            and record.latency_ms >= tail_s * 1e3 - 50
        ):
            record.outcome, record.latency_ms = "timeout", None
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return records


async def warm_up(server: Server, tail_s: float) -> None:
    """One short session that is not measured: the first forward passes allocate and compile."""
    keys = schedule(split_keystrokes("    path = os.getcwd()"), random.Random(0), 5.0)
    text = "import os\n\n\ndef main():\n\n"
    await replay(
        server, Session(-1, "warmup.py", "file:///bench/latency/warmup.py", "python", text, 4, keys), tail_s
    )


async def run(args: argparse.Namespace, log) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    files = [Path(f) for f in args.files] if args.files else default_files()
    sessions = make_sessions(files, args.keystrokes, args.seed, args.cps, args.session_keys)
    servers = [Server(name, *CONFIGS[name]) for name in args.configs]
    log(f"{len(sessions)} sessions, {sum(len(s.keys) for s in sessions)} keystrokes per configuration")
    try:
        for server in servers:  # one load at a time: concurrent loads would only fight for the cores
            log(f"starting server {server.name} (reuse {server.reuse}, speculation {server.speculative})")
            await start_server(server, args, out)
            status = await wait_ready(server, READY_TIMEOUT_S)
            log(f"  {status.get('model')} ready ({status.get('format')}, load {status.get('loadSeconds')} s)")
        for server in servers:
            await warm_up(server, args.tail_s)
            assert server.client is not None
            status = await server.client.call("codegeex/status", None)
            server.counters_start = dict(status["counters"])
            server.worker_pid = (status.get("backend") or {}).get("pid") or server.worker_pid
            server.rss_start_mib = rss_mib(server.proc.pid if server.proc else None, server.worker_pid)
        requests: dict[str, list[RequestRecord]] = {s.name: [] for s in servers}
        decodes: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
        load_start = os.getloadavg()
        for session in sessions:
            shift = session.index % len(servers)
            for server in servers[shift:] + servers[:shift]:
                records = await replay(server, session, args.tail_s, prewarm=args.prewarm)
                assert server.client is not None
                status = await server.client.call("codegeex/status", None)
                ids = {r.request_id: r for r in records}
                for decode in status.get("recentDecodes", []):
                    if decode.get("requestId") in ids:
                        decodes[server.name].append({**decode, "session": session.index})
                requests[server.name] += records
            done = session.index + 1
            log(f"session {done}/{len(sessions)} ({Path(session.path).name}, {len(session.keys)} keys)")
        summaries = {}
        for server in servers:
            assert server.client is not None
            status = await server.client.call("codegeex/status", None)
            counters = {k: v - server.counters_start.get(k, 0) for k, v in status["counters"].items()}
            rss_end = rss_mib(server.proc.pid if server.proc else None, server.worker_pid)
            summaries[server.name] = summarize(
                server, requests[server.name], decodes[server.name], counters, rss_end
            )
        meta = {
            "model": args.model,
            "dtype": args.dtype if args.quant == "none" else f"{args.quant} weights",
            "quant": args.quant,
            "threads": args.threads,
            "backend": "in-process" if args.in_process else "private worker",
            "files": [str(f) for f in files],
            "sessions": len(sessions),
            "keystrokes": sum(len(s.keys) for s in sessions),
            "cps": args.cps,
            "debounce_ms": args.debounce_ms,
            "prefix_tokens": args.prefix_tokens,
            "suffix_tokens": args.suffix_tokens,
            "max_tokens_line": args.max_tokens_line,
            "max_tokens_block": args.max_tokens_block,
            "cpu_count": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": "codegeex-lsp bench latency " + " ".join(args.argv),
        }
        return {
            "meta": meta,
            "summaries": summaries,
            "requests": {k: [asdict(r) for r in v] for k, v in requests.items()},
            "decodes": decodes,
        }
    finally:
        await asyncio.gather(*(stop_server(s) for s in servers), return_exceptions=True)


# -- statistics and report -----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def _dist(values: Sequence[float]) -> dict[str, Any]:
    return {"n": len(values), **{f"p{q}": percentile(values, q) for q in (50, 95, 99)}}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(
    server: Server,
    requests: Sequence[RequestRecord],
    decodes: Sequence[dict[str, Any]],
    counters: dict[str, int],
    rss_end_mib: float,
) -> dict[str, Any]:
    finished = [d for d in decodes if d.get("finish") != "cancelled"]
    by_id = {d["requestId"]: d for d in finished}
    timed = [d for d in finished if d.get("firstTokenMs") is not None]
    first = [d["firstTokenMs"] for d in timed]
    compute = [d["firstTokenMs"] - d["startMs"] for d in timed]
    served = [r for r in requests if r.outcome == "suggestion" and r.latency_ms is not None]
    model = [r.latency_ms for r in served if r.request_id in by_id]
    line_model = [
        r.latency_ms for r in served if r.request_id in by_id and by_id[r.request_id].get("mode") == "LINE"
    ]
    n_requests = len(requests)
    prefill_all = sum(d["prefillTokens"] for d in decodes)
    prefill = [d["prefillTokens"] for d in finished]
    prompt_total = sum(d["promptTokens"] for d in finished) or 1
    drafted = sum(d["draftTokens"] for d in decodes)
    generated = sum(d["generatedTokens"] for d in finished)
    passes = sum(d["forwardPasses"] + 1 for d in finished if d["generatedTokens"])  # + the prefill's
    decode_ms = sum(d["decodeMs"] for d in finished)
    outcomes = {
        k: sum(1 for r in requests if r.outcome == k)
        for k in ("suggestion", "empty", "cancelled", "error", "timeout")
    }
    return {
        "reuse": server.reuse,
        "speculative": server.speculative,
        "requests": n_requests,
        "outcomes": outcomes,
        "decodes": len(decodes),
        "decodes_finished": len(finished),
        "first_token_ms": _dist(first),
        "first_token_compute_ms": _dist(compute),
        "final_model_ms": _dist(model),
        "final_model_line_ms": _dist(line_model),
        "final_any_ms": _dist([r.latency_ms for r in served]),
        "prefill_tokens_per_answer": sum(prefill) / len(prefill) if prefill else None,
        "prefill_tokens_per_answer_p50": percentile(prefill, 50),
        "prefill_tokens_per_keystroke": prefill_all / n_requests if n_requests else None,
        "reused_share": sum(d["reusedTokens"] for d in finished) / prompt_total,
        "tokens_per_pass": generated / passes if passes else None,
        "draft_tokens": drafted,
        "accepted_share": sum(d["acceptedTokens"] for d in decodes) / drafted if drafted else None,
        "decode_ms_per_token": decode_ms / generated if generated else None,
        "cache_hit_rate": counters.get("cacheHits", 0) / n_requests if n_requests else 0.0,
        "typed_through_rate": counters.get("typedThrough", 0) / n_requests if n_requests else 0.0,
        "cancelled_rate": outcomes["cancelled"] / n_requests if n_requests else 0.0,
        "superseded": counters.get("superseded", 0),
        "counters": counters,
        "rss_start_mib": server.rss_start_mib,
        "rss_end_mib": rss_end_mib,
        "first_token_values_ms": first,
        "final_model_values_ms": model,
    }


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _triple(dist: dict[str, Any]) -> str:
    return f"{_ms(dist['p50'])} / {_ms(dist['p95'])} / {_ms(dist['p99'])} (n={dist['n']})"


def format_report(result: dict[str, Any], chart: str | None) -> str:
    meta, sums = result["meta"], result["summaries"]
    debounce = (
        "server default (adaptive)" if meta["debounce_ms"] is None else f"{meta['debounce_ms']} ms fixed"
    )
    lines = [
        "# Keystroke latency",
        "",
        f"`{meta['command']}` — {meta['date']}",
        "",
        f"Model {meta['model']} ({meta['dtype']}, {meta['threads'] or 'all'} threads, {meta['backend']}); "
        f"{meta['sessions']} sessions, {meta['keystrokes']} keystrokes per configuration at ~{meta['cps']:g} "
        f"chars/s; debounce {debounce}; budgets {meta['prefix_tokens']} prefix + {meta['suffix_tokens']} suffix "
        f"tokens; max tokens {meta['max_tokens_line']} (line) / {meta['max_tokens_block']} (block). "
        f"{meta['cpu_count']} CPUs, load average {meta['loadavg_start'][0]:.1f} at the start and "
        f"{meta['loadavg_end'][0]:.1f} at the end (a shared machine: compare configurations, not runs).",
        "",
        "## Latency (ms, p50 / p95 / p99)",
        "",
        "| config | reuse | spec | first token | first token, compute | final (model) | final (model, line) | final (any suggestion) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in sums.items():
        lines.append(
            f"| {name} | {'on' if s['reuse'] else 'off'} | {'on' if s['speculative'] else 'off'} | "
            f"{_triple(s['first_token_ms'])} | {_triple(s['first_token_compute_ms'])} | "
            f"{_triple(s['final_model_ms'])} | {_triple(s['final_model_line_ms'])} | {_triple(s['final_any_ms'])} |"
        )
    lines += [
        "",
        "## Work and hit rates",
        "",
        "| config | requests | decodes (answered) | prefill tok/answer (mean, p50) | prefill tok/keystroke | reused (answers) | tokens/pass | drafts kept | decode ms/token | cache hits | typed-through | cancelled | suggestions | RSS MiB start → end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in sums.items():
        per_token = s["decode_ms_per_token"]
        per_pass = s["tokens_per_pass"]
        lines.append(
            f"| {name} | {s['requests']} | {s['decodes']} ({s['decodes_finished']}) | "
            f"{_ms(s['prefill_tokens_per_answer'])}, {_ms(s['prefill_tokens_per_answer_p50'])} | "
            f"{_ms(s['prefill_tokens_per_keystroke'])} | {_pct(s['reused_share'])} | "
            f"{'n/a' if per_pass is None else f'{per_pass:.2f}'} | "
            f"{_pct(s['accepted_share'])} of {s['draft_tokens']} | "
            f"{'n/a' if per_token is None else f'{per_token:.1f}'} | "
            f"{_pct(s['cache_hit_rate'])} | {_pct(s['typed_through_rate'])} | {_pct(s['cancelled_rate'])} | "
            f"{s['outcomes']['suggestion']} | {s['rss_start_mib']:.0f} → {s['rss_end_mib']:.0f} |"
        )
    lines += ["", "## Each feature on and off (ratio off / on; above 1: the feature helps)", ""]
    lines += [
        "| feature | compared | first token p50 | compute first token p50 | final (model) p50 | prefill tok/answer | prefill tok/keystroke | passes/token | decode ms/token |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for feature, off, on in (
        ("KV reuse", "no-reuse", "full"),
        ("speculation", "no-spec", "full"),
        ("both", "off", "full"),
    ):
        if off in sums and on in sums:
            a, b = sums[off], sums[on]
            lines.append(
                f"| {feature} | {off} / {on} | "
                f"{_x(_ratio(a['first_token_ms']['p50'], b['first_token_ms']['p50']))} | "
                f"{_x(_ratio(a['first_token_compute_ms']['p50'], b['first_token_compute_ms']['p50']))} | "
                f"{_x(_ratio(a['final_model_ms']['p50'], b['final_model_ms']['p50']))} | "
                f"{_x(_ratio(a['prefill_tokens_per_answer'], b['prefill_tokens_per_answer']))} | "
                f"{_x(_ratio(a['prefill_tokens_per_keystroke'], b['prefill_tokens_per_keystroke']))} | "
                f"{_x(_ratio(b['tokens_per_pass'], a['tokens_per_pass']))} | "
                f"{_x(_ratio(a['decode_ms_per_token'], b['decode_ms_per_token']))} |"
            )
    best = sums.get("full") or next(iter(sums.values()))
    measured = {
        "first token p50": best["first_token_ms"]["p50"],
        "final p50": best["final_model_line_ms"]["p50"],
        "final p95": best["final_model_line_ms"]["p95"],
    }
    lines += ["", "## Targets (the issue's, for int4 on a quiet machine)", ""]
    lines += [
        "| metric | target ms | measured ms (full; final: line-mode decodes) | met |",
        "|---|---|---|---|",
    ]
    for metric, target in TARGETS_MS.items():
        got = measured[metric]
        met = "n/a" if got is None else ("yes" if got <= target else "no")
        lines.append(f"| {metric} | {target:.0f} | {_ms(got)} | {met} |")
    lines += [
        "",
        "First token: the server's record, from the request's arrival to the first sampled token (debounce,",
        "queueing behind a decode still running, prompt and prefill included); compute starts when the",
        "decode does. Final: this client's clock, request sent to answer, for requests answered with a",
        "suggestion. Each session opens its document and (unless --no-prewarm) waits for one invoked",
        "completion at the cursor before typing, so typing meets a warm document, as after a pause; that",
        "request is not measured. Token counts and passes do not depend on the machine's load; latencies do.",
    ]
    if chart:
        lines += ["", f"![latency histograms]({chart})"]
    return "\n".join(lines) + "\n"


def write_chart(result: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")  # no display on benchmark machines
    import matplotlib.pyplot as plt
    import numpy as np

    sums = result["summaries"]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    panels = (
        ("first_token_values_ms", "keystroke → first token (ms)"),
        ("final_model_values_ms", "keystroke → final suggestion, model (ms)"),
    )
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = [v for s in sums.values() for v in s[key] if v > 0]
        if not values:
            ax.set_title(title + ": no data")
            continue
        bins = np.logspace(np.log10(max(1.0, min(values))), np.log10(max(values) * 1.05), 30)
        for name, s in sums.items():
            if s[key]:
                ax.hist(s[key], bins=bins, histtype="step", linewidth=1.5, label=f"{name} (n={len(s[key])})")
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel("ms")
        ax.set_ylabel("requests")
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codegeex-lsp bench latency", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files", nargs="+", help="source files to replay (default: bench/data + stdlib files)"
    )
    parser.add_argument(
        "--keystrokes", type=int, default=300, help="keystrokes per configuration (default: 300)"
    )
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated, from {', '.join(CONFIGS)} (default: all)",
    )
    parser.add_argument("--json-out", type=Path, help="write every request and decode record here")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="report directory (default: %(default)s)"
    )
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    parser.add_argument(
        "--quant", default="int4", choices=["none", "int4"], help="weights (default: int4, the issue's target setting)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads per server (0: all cores)")
    parser.add_argument(
        "--in-process", action="store_true", help="serve with --in-process (default: a private worker)"
    )
    parser.add_argument(
        "--cps", type=float, default=5.0, help="typing speed, characters per second (default: 5)"
    )
    parser.add_argument(
        "--debounce-ms", type=int, help="fixed server debounce (default: the server's adaptive one)"
    )
    parser.add_argument("--prefix-tokens", type=int, default=768)
    parser.add_argument("--suffix-tokens", type=int, default=256)
    parser.add_argument("--max-tokens-line", type=int, default=48)
    parser.add_argument("--max-tokens-block", type=int, default=96)
    parser.add_argument(
        "--session-keys", type=int, default=MAX_KEYS_PER_SESSION, help="keystrokes per session at most"
    )
    parser.add_argument(
        "--tail-s", type=float, default=SESSION_TAIL_S, help="wait for the last answer of a session"
    )
    parser.add_argument(
        "--no-prewarm",
        dest="prewarm",
        action="store_false",
        help="type into a cold document (default: one invoked completion first, not measured)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.argv = list(argv or [])
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown or not args.configs:
        parser.error(
            f"unknown configuration(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(CONFIGS)}"
        )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = asyncio.run(run(args, log))
    chart = "latency.png" if write_chart(result, args.out / "latency.png") else None
    report = format_report(result, chart)
    (args.out / "latency.md").write_text(report, encoding="utf-8")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(report)
    return 0
