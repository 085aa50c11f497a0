"""The peer: llama.cpp's `llama-server` on the same GGUF, driven through `/infill` the way llama.vscode does.

`VscodeLlama` ports llama.vscode's completion provider (ggml-org/llama.vscode v0.0.63,
`src/completion.ts`, `src/llama-server.ts`, settings defaults from its `package.json`) so the same
keystroke replay meets what a llama.vscode user gets:

- VS Code calls the provider on every keystroke and cancels the previous call's token; the provider
  waits out its debounce (default 0 ms), then polls every 150 ms while an earlier request is in
  flight (its HTTP request is never aborted), giving up if its token was cancelled;
- the context is line windows: 256 lines before the cursor line (`input_prefix`), the cursor line up
  to the cursor (`prompt`), the rest of the line and 64 lines after (`input_suffix`); no automatic
  completion when more than 8 characters follow the cursor; `input_extra` is empty here (its ring
  of chunks from other files has nothing to pick in a one-file replay, nor does our server);
- the body: `n_predict` 128, `t_max_prompt_ms` 500, `t_max_predict_ms` 500, `top_k` 40, `top_p` 0.99,
  samplers top_k/top_p/infill, `cache_prompt`, `id_slot` 0, `n_indent`; plus a fixed `seed` here so
  runs repeat (`greedy=True` asks for top-1 instead). llama.vscode asks for 3 completions (`n_cmpl`);
  one is asked here by default, as our server makes one (`n_cmpl` is an option);
- its result cache (250 keys): an exact hit, or the cursor line's text typed into a cached
  suggestion (typed-through); after a shown suggestion it asks in the background for the one after
  it (`cacheFutureSuggestion`) and caches the accept-line remainder;
- its filters: drop a suggestion that repeats the text below, cut one that runs into the line's
  suffix, strip the indentation already typed.

The server: `llama-server --cache-reuse 256 -ub 1024 -b 1024` (llama.vscode's CPU preset for
Qwen2.5-Coder-0.5B) with a modest context instead of `--ctx-size 0`, one slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import socket
import subprocess
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# llama.vscode's defaults (package.json of v0.0.63)
DEBOUNCE_MS = 0
DELAY_BEFORE_REQUEST_S = 0.150
N_PREFIX_LINES, N_SUFFIX_LINES = 256, 64
N_PREDICT = 128
T_MAX_PROMPT_MS, T_MAX_PREDICT_MS = 500, 500
MAX_LINE_SUFFIX = 8
MAX_CACHE_KEYS = 250
SEED = 1234

SERVER_FLAGS = ("--cache-reuse", "256", "-ub", "1024", "-b", "1024", "-np", "1")
CONTEXT_TOKENS = 8192
READY_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 120.0

CANCELLED = "cancelled"


@dataclass
class Token:
    """VS Code's CancellationToken: set when the next keystroke arrives."""

    cancelled: bool = False


@dataclass
class Answer:
    text: str = ""
    source: str | None = None  # model | cache | typed-through
    cancelled: bool = False
    first_token_ms: float | None = None  # from the keystroke: waiting + the server's prompt time
    infills: list[dict[str, Any]] = field(default_factory=list)


def split_lines(text: str) -> list[str]:
    return re.split(r"\r?\n", text)


def drop_trailing_blank(lines: list[str]) -> list[str]:
    out = list(lines)
    while out and not out[-1].strip():
        out.pop()
    return out


def should_discard(
    suggestion: list[str], doc: list[str], line: int, line_prefix: str, line_suffix: str
) -> bool:
    """llama.vscode's `shouldDiscardSuggestion`: a suggestion that repeats the text below is dropped."""
    if not suggestion:
        return True
    if len(suggestion) == 1 and not suggestion[0].strip():
        return True
    if line == len(doc) - 1:
        return False
    below = doc[line + 1 :]
    if (
        len(suggestion) > 1
        and (not suggestion[0].strip() or suggestion[0].strip() == line_suffix.strip())
        and all(i < len(below) and value == below[i] for i, value in enumerate(suggestion[1:]))
    ):
        return True
    if len(suggestion) == 1 and suggestion[0] == line_suffix:
        return True
    first = line + 1
    while first < len(doc) and not doc[first].strip():
        first += 1
    if first >= len(doc):
        return False
    if line_prefix + suggestion[0] == doc[first]:
        if len(suggestion) == 1:
            return True
        after = doc[first + 1 :]
        if len(suggestion) == 2 and after and suggestion[1] == after[0][: len(suggestion[1])]:
            return True
        if len(suggestion) > 2 and all(
            i < len(after) and v == after[i] for i, v in enumerate(suggestion[1:])
        ):
            return True
    return False


def update_suggestion(suggestion: list[str], line_suffix: str) -> str:
    """llama.vscode's `updateSuggestion`: with text right of the cursor, keep one line without it."""
    if line_suffix.strip():
        if suggestion[0].endswith(line_suffix):
            return suggestion[0][: -len(line_suffix)]
        if len(suggestion) > 1:
            return suggestion[0]
    return "\n".join(suggestion)


def remove_leading_spaces(text: str, n: int) -> str:
    i = 0
    while i < len(text) and i < n and text[i] in " \t":
        i += 1
    return text[i:]


class ResultCache:
    """llama.vscode's LRU of suggestions, keyed by a hash of (prefix, suffix, prompt)."""

    def __init__(self, max_keys: int = MAX_CACHE_KEYS) -> None:
        self.max_keys = max_keys
        self._items: OrderedDict[str, list[str]] = OrderedDict()

    @staticmethod
    def key(prefix: str, suffix: str, prompt: str) -> str:
        return hashlib.sha256(f"{prefix}|{suffix}|{prompt}".encode()).hexdigest()

    def get(self, key: str) -> list[str] | None:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: str, value: list[str]) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_keys:
            self._items.popitem(last=False)

    def lookup(self, prefix: str, suffix: str, prompt: str) -> tuple[list[str] | None, str | None]:
        """`getCachedCompletion`: an exact hit, else a cached suggestion the line's end was typed into."""
        exact = self.get(self.key(prefix, suffix, prompt))
        if exact is not None:
            return exact, "cache"
        for i in range(len(prompt) - 1, -1, -1):
            cached = self.get(self.key(prefix, suffix, prompt[:i]))
            if cached is None:
                continue
            cut = prompt[i:]
            found = [c[len(cut) :] for c in cached if c and c.startswith(cut)]
            if found:
                return found, "typed-through"
        return None, None


def infill_body(
    input_prefix: str, input_suffix: str, prompt: str, n_indent: int, *, n_cmpl: int = 1, greedy: bool = False
) -> dict[str, Any]:
    """The `/infill` body llama.vscode sends (`createRequestPayload`)."""
    body: dict[str, Any] = {
        "id_slot": 0,
        "input_prefix": input_prefix,
        "input_suffix": input_suffix,
        "input_extra": [],
        "prompt": prompt,
        "n_predict": N_PREDICT,
        "top_k": 40,
        "top_p": 0.99,
        "stream": False,
        "samplers": ["top_k", "top_p", "infill"],
        "cache_prompt": True,
        "t_max_prompt_ms": T_MAX_PROMPT_MS,
        "t_max_predict_ms": T_MAX_PREDICT_MS,
        "seed": SEED,
    }
    if n_cmpl > 1:
        body["n_cmpl"] = n_cmpl
    if n_indent:
        body["n_indent"] = n_indent
    if greedy:
        body.update(top_k=1, samplers=["top_k"])
    return body


def contents(data: Any) -> list[str]:
    """`getComplFromContent`: one answer or a list of them (n_cmpl)."""
    if isinstance(data, dict):
        return [str(data.get("content") or "")]
    return list(dict.fromkeys(str(d.get("content") or "") for d in data))


class VscodeLlama:
    """llama.vscode's provider against one llama-server; one instance per replay."""

    def __init__(self, http: httpx.AsyncClient, *, n_cmpl: int = 1, greedy: bool = False) -> None:
        self.http = http
        self.n_cmpl = n_cmpl
        self.greedy = greedy
        self.cache = ResultCache()
        self.in_progress = False
        self.background: set[asyncio.Task[None]] = set()
        self.background_infills: list[dict[str, Any]] = []

    async def infill(
        self, prefix: str, suffix: str, prompt: str, n_indent: int
    ) -> tuple[list[str], dict[str, Any]]:
        sent = time.monotonic()
        response = await self.http.post(
            "/infill",
            json=infill_body(prefix, suffix, prompt, n_indent, n_cmpl=self.n_cmpl, greedy=self.greedy),
        )
        response.raise_for_status()
        data = response.json()
        first = data if isinstance(data, dict) else (data[0] if data else {})
        timings = first.get("timings") or {}
        record = {
            "sent_s": sent,
            "answered_s": time.monotonic(),
            "prompt_ms": timings.get("prompt_ms"),
            "predicted_ms": timings.get("predicted_ms"),
            "prompt_n": timings.get("prompt_n"),
            "cache_n": timings.get("cache_n"),
            "predicted_n": timings.get("predicted_n"),
        }
        return contents(data), record

    async def provide(self, doc: list[str], line: int, col: int, token: Token, keyed_s: float) -> Answer:
        """One automatic trigger at (line, col) of `doc` (the document's lines after the keystroke)."""
        if DEBOUNCE_MS > 0:
            await asyncio.sleep(DEBOUNCE_MS / 1e3)
            if token.cancelled:
                return Answer(cancelled=True)
        while self.in_progress:
            await asyncio.sleep(DELAY_BEFORE_REQUEST_S)
            if token.cancelled:
                return Answer(cancelled=True)
        self.in_progress = True
        try:
            return await self._provide(doc, line, col, token, keyed_s)
        finally:
            self.in_progress = False

    async def _provide(self, doc: list[str], line: int, col: int, token: Token, keyed_s: float) -> Answer:
        prefix_lines = doc[max(0, line - N_PREFIX_LINES) : line]
        suffix_lines = doc[line + 1 : min(len(doc) - 1, line + N_SUFFIX_LINES) + 1]
        line_text = doc[line]
        line_prefix, line_suffix = line_text[:col], line_text[col:]
        n_indent = len(line_text) - len(line_text.lstrip())
        if len(line_suffix) > MAX_LINE_SUFFIX:
            return Answer()
        prompt, spaces = line_prefix, 0
        if not line_prefix.strip(" \t"):
            prompt, spaces = "", len(line_prefix)
        input_prefix = "\n".join(prefix_lines) + "\n"
        input_suffix = line_suffix + "\n" + "\n".join(suffix_lines) + "\n"
        key = self.cache.key(input_prefix, input_suffix, prompt)
        completions, source = self.cache.lookup(input_prefix, input_suffix, prompt)
        answer = Answer(source=source)
        if completions is None:
            if token.cancelled:
                return Answer(cancelled=True)
            completions, record = await self.infill(input_prefix, input_suffix, prompt, n_indent)
            answer.source = "model"
            answer.infills.append(record)
            if record["prompt_ms"] is not None:
                answer.first_token_ms = (record["sent_s"] - keyed_s) * 1e3 + record["prompt_ms"]
        kept: list[str] = []
        first_lines: list[str] = []
        for completion in completions:
            lines = drop_trailing_blank(split_lines(completion))
            if should_discard(lines, doc, line, line_prefix, line_suffix):
                continue
            kept.append(update_suggestion(lines, line_suffix))
            first_lines = first_lines or lines
        if not kept:
            return answer
        if answer.source == "model":
            self.cache.put(key, kept)
        if not token.cancelled and not line_suffix.strip():
            task = asyncio.ensure_future(self._cache_future(input_prefix, input_suffix, prompt, first_lines))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        answer.text = remove_leading_spaces(kept[0], spaces)
        return answer

    async def _cache_future(self, prefix: str, suffix: str, prompt: str, lines: list[str]) -> None:
        """`cacheFutureSuggestion` + `cacheFutureAcceptLineSuggestion`: ask for what follows this one."""
        future_prefix, future_prompt = prefix, prompt + lines[0]
        if len(lines) > 1:
            future_prefix = prefix + prompt + "\n".join(lines[:-1]) + "\n"
            future_prompt = lines[-1]
            kept = future_prefix[:-1].split("\n")
            if len(kept) > N_PREFIX_LINES:
                future_prefix = "\n".join(kept[-N_PREFIX_LINES:]) + "\n"
        key = self.cache.key(future_prefix, suffix, future_prompt)
        if self.cache.get(key) is None:
            indent = len(prompt) - len(prompt.lstrip())
            with contextlib.suppress(httpx.HTTPError, ValueError):
                found, record = await self.infill(future_prefix, suffix, future_prompt, indent)
                self.background_infills.append(record)
                suggestions = ["\n".join(drop_trailing_blank(split_lines(s))) for s in found if s.strip()]
                if suggestions:
                    self.cache.put(key, suggestions)
        if len(lines) > 1:
            accept_key = self.cache.key(prefix + prompt + lines[0] + "\n", suffix, "")
            if self.cache.get(accept_key) is None:
                self.cache.put(accept_key, ["\n".join(lines[1:])])

    async def settle(self) -> None:
        """Wait for background requests (between sessions, so one session's work does not leak)."""
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)


class LlamaServer:
    """One `llama-server` process on a free localhost port."""

    def __init__(
        self, binary: Path, gguf: Path, env: dict[str, str], log_path: Path, threads: int = 0
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.command = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port)]
        self.command += [*SERVER_FLAGS, "--ctx-size", str(CONTEXT_TOKENS)]
        if threads > 0:
            self.command += ["-t", str(threads)]
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
            )

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url, trust_env=False) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"llama-server exited with code {self.proc.returncode}; see {self.log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/health", timeout=5.0)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"llama-server not healthy after {timeout_s:.0f} s; see {self.log_path}"
                    )
                await asyncio.sleep(0.25)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=REQUEST_TIMEOUT_S, trust_env=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)
