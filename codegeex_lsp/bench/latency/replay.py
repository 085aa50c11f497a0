"""Replaying one session's keystrokes on schedule, into our server or into the peer, one `Request` each.

Both sides see the same thing an editor does: the edit, then a completion request; the next
keystroke cancels the request before it (`$/cancelRequest` for our server; the cancellation token
for llama.vscode's provider). The typist never waits for an answer (the schedule is fixed), except
after the last key, where the session's tail bounds the wait.

Before typing, each session asks once at the cursor (invoked, not measured): the user opened the
file and paused, so typing meets a warm document on both sides.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from typing import Any

from pygls.exceptions import JsonRpcException

from codegeex_lsp.bench.latency.peer import Answer, Token, VscodeLlama
from codegeex_lsp.bench.latency.stats import CANCELLED_CODE, Request, continues
from codegeex_lsp.bench.latency.typist import Session, advance
from codegeex_lsp.lsp_client import LspClient, suggestion_text


async def _at(start: float, offset_s: float) -> None:
    delay = start + offset_s - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def replay_ours(
    client: LspClient, session: Session, tail_s: float, prewarm: bool = True
) -> list[Request]:
    """Type `session` into our server; requests carry the server's decode records (mode, first token)."""
    uri = session.uri
    client.open(uri, session.language_id, session.text)
    line, col, version = session.line, 0, 1
    if prewarm:
        _id, future = client.inline(uri, line, col, invoked=True)
        await asyncio.wait([_wrap(future)], timeout=tail_s)
    requests: list[Request] = []
    futures: list[asyncio.Future[Any]] = []
    previous: tuple[int, Future[Any]] | None = None
    start = time.monotonic() + 0.05
    for index, key in enumerate(session.keys):
        await _at(start, key.at_s)
        now = time.monotonic()
        if previous is not None:
            requests[-1].next_key_s = now
            if not previous[1].done():
                client.cancel(previous[0])  # as VS Code does when the next keystroke arrives
        version += 1
        client.insert(uri, version, line, col, key.text)
        line, col = advance(line, col, key.text)
        msg_id, future = client.inline(uri, line, col)
        request = Request(
            session.index,
            index,
            time.monotonic(),
            pause_after=key.pause_after,
            rest=session.rest_after(index),
            request_id=f"inline#{msg_id}",
        )
        future.add_done_callback(lambda f, r=request: _answered(r, f))
        requests.append(request)
        futures.append(_wrap(future))
        previous = (msg_id, future)
    if futures:
        await asyncio.wait(futures, timeout=tail_s)
    for request in requests:
        request.timed_out = request.answered_s is None
    client.close(uri)
    decodes = {d.get("requestId"): d for d in (await client.status()).get("recentDecodes", [])}
    attach_sources(requests, [k.text for k in session.keys], decodes)
    return requests


def _wrap(future: Future[Any]) -> asyncio.Future[Any]:
    """An awaitable view of a pygls request future whose error (cancelled, ...) is read in `_answered`."""
    wrapped = asyncio.wrap_future(future)
    wrapped.add_done_callback(lambda f: f.cancelled() or f.exception())
    return wrapped


def _answered(request: Request, future: Future[Any]) -> None:
    if request.timed_out:
        return
    request.answered_s = time.monotonic()
    if future.cancelled():
        request.error_code = CANCELLED_CODE
        return
    error = future.exception()
    if isinstance(error, JsonRpcException):
        request.error_code = error.code
    elif error is not None:
        request.error_code = -32603
    else:
        request.text = suggestion_text(future.result())


def attach_sources(requests: list[Request], keys: list[str], decodes: dict[str, dict[str, Any]]) -> None:
    """Mark each answer model (a decode record names it), typed-through or cache; copy mode and first token."""
    on_screen = ""
    for request, key in zip(requests, keys, strict=True):
        decode = decodes.get(request.request_id)
        if decode is not None:
            request.source = "model"
            request.mode = decode.get("mode")
            request.first_token_ms = decode.get("firstTokenMs")
        elif request.text:
            request.source = "typed-through" if continues(on_screen, key, request.text) else "cache"
        on_screen = request.text if request.outcome in ("shown", "typed-through") else ""


def _apply(doc: list[str], line: int, col: int, text: str) -> None:
    """Insert `text` at (line, col) of `doc` (a list of lines, edited in place)."""
    current = doc[line]
    pieces = (current[:col] + text + current[col:]).split("\n")
    doc[line : line + 1] = pieces


def _advance_chars(line: int, col: int, text: str) -> tuple[int, int]:
    """The cursor after inserting `text`, in code points (Python string indexes), for the peer's lines."""
    if "\n" in text:
        return line + text.count("\n"), len(text.rsplit("\n", 1)[-1])
    return line, col + len(text)


async def replay_peer(
    peer: VscodeLlama, session: Session, tail_s: float, prewarm: bool = True
) -> tuple[list[Request], list[float]]:
    """Type `session` into llama.vscode's provider; (requests, first-token times of its /infill calls)."""
    doc = session.text.split("\n")
    line, col = session.line, 0
    if prewarm:  # an invoked request, as when the user pauses on the opened file; not measured
        warm = asyncio.ensure_future(peer.provide(list(doc), line, col, Token(), time.monotonic()))
        await asyncio.wait([warm], timeout=tail_s)
        warm.cancel()
        await peer.settle()
    requests: list[Request] = []
    tasks: list[asyncio.Task[None]] = []
    first_tokens: list[float] = []
    token: Token | None = None
    start = time.monotonic() + 0.05
    for index, key in enumerate(session.keys):
        await _at(start, key.at_s)
        if token is not None:
            token.cancelled = True
            requests[-1].next_key_s = time.monotonic()
        _apply(doc, line, col, key.text)
        line, col = _advance_chars(line, col, key.text)
        token = Token()
        request = Request(
            session.index,
            index,
            time.monotonic(),
            pause_after=key.pause_after,
            rest=session.rest_after(index),
        )
        requests.append(request)
        tasks.append(
            asyncio.ensure_future(_provide(peer, list(doc), line, col, token, request, first_tokens))
        )
    if tasks:
        await asyncio.wait(tasks, timeout=tail_s)
    for request, task in zip(requests, tasks, strict=True):
        request.timed_out = not task.done()
        task.cancel()
    await peer.settle()
    return requests, first_tokens


async def _provide(
    peer: VscodeLlama,
    doc: list[str],
    line: int,
    col: int,
    token: Token,
    request: Request,
    first_tokens: list[float],
) -> None:
    try:
        answer: Answer = await peer.provide(doc, line, col, token, request.sent_s)
    except Exception:  # a failed HTTP request: llama.vscode shows an error and returns nothing
        request.answered_s, request.error_code = time.monotonic(), -32603
        return
    request.answered_s = time.monotonic()
    if answer.first_token_ms is not None:
        first_tokens.append(answer.first_token_ms)
    if answer.cancelled:
        request.error_code = CANCELLED_CODE
        return
    request.text, request.source = answer.text, answer.source
