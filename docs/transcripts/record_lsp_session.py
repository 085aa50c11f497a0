"""Record a real `codegeex-lsp serve` session as a Markdown transcript of its JSON-RPC traffic.

    python docs/transcripts/record_lsp_session.py [--model NAME] [--out docs/transcripts/lsp-session.md]

Drives the server over stdio like an editor would, through the project's one LSP client
(`codegeex_lsp.lsp_client`, pygls): initialize (UTF-16, inline completion, progress), waits for the
model, opens a Python and a Rust file, asks for inline completions, types through a suggestion,
repeats a request (cache), uses the textDocument/completion fallback, cancels a request, reads
codegeex/status, then shuts down. Every message either way is logged with its time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types as lsp

from codegeex_lsp.lsp_client import LspClient, editor_capabilities

PYTHON_URI = "file:///demo/stats.py"
PYTHON_TEXT = (
    "import math\n"
    "\n"
    "\n"
    "def mean(values: list[float]) -> float:\n"
    '    """Arithmetic mean of a non-empty list."""\n'
    "    return sum(values) / len(values)\n"
    "\n"
    "\n"
    "def stdev(values: list[float]) -> float:\n"
    '    """Sample standard deviation."""\n'
    "    \n"
)
PYTHON_CURSOR = (10, 4)

RUST_URI = "file:///demo/words.rs"
RUST_TEXT = (
    "use std::collections::HashMap;\n"
    "\n"
    "/// Counts how often each word occurs in `text`.\n"
    "fn word_counts(text: &str) -> HashMap<String, usize> {\n"
    "    \n"
    "}\n"
    "\n"
    "fn main() {\n"
    '    let counts = word_counts("a b a");\n'
    '    println!("{:?}", counts);\n'
    "}\n"
)
RUST_CURSOR = (4, 4)
# Typed into main() for the textDocument/completion fallback: the item replaces the word "val".
RUST_TYPED = (9, 0, "    let total: usize = counts.val\n")

Message = dict[str, Any]
KEY_ORDER = ("jsonrpc", "id", "method", "params", "result", "error")
"""Top-level keys in the order a reader expects them (pygls writes `id`, `params`, `method`, ...)."""


class Session:
    """The shared pygls client with every message either way logged, timed from the start."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.log: list[tuple[float, str, Message]] = []
        self._waiters: list[tuple[Callable[[Message], bool], asyncio.Future[Message]]] = []
        self.client = LspClient("record_lsp_session.py", on_message=self._record)

    def _record(self, outgoing: bool, message: Message) -> None:
        stamp = (time.monotonic() - self.started) * 1000.0
        ordered = {key: message[key] for key in KEY_ORDER if key in message} | message
        self.log.append((stamp, "client → server" if outgoing else "server → client", ordered))
        for waiter in [w for w in self._waiters if not outgoing and w[0](message)]:
            self._waiters.remove(waiter)
            if not waiter[1].done():
                waiter[1].set_result(message)

    def expect(self, predicate: Callable[[Message], bool]) -> asyncio.Future[Message]:
        """A future of the next server message matching `predicate` (ask before it can arrive)."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future

    async def call(self, method: str, params: Any) -> Any:
        return await self.client.request(method, params)

    def notify(self, method: str, params: Any) -> None:
        self.client.notify(method, params)


def inline_params(uri: str, line: int, character: int, invoked: bool = False) -> dict[str, Any]:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 1 if invoked else 2},
    }


def insert(session: Session, uri: str, version: int, line: int, character: int, text: str) -> None:
    at = {"line": line, "character": character}
    session.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": at, "end": at}, "text": text}],
        },
    )


def first_item_text(result: Any) -> str:
    items = (result or {}).get("items") or []
    return items[0]["insertText"] if items else ""


def capabilities() -> lsp.ClientCapabilities:
    """An inline-completion editor's, with work-done progress and the completion fallback."""
    caps = editor_capabilities(progress=True)
    assert caps.text_document is not None
    return attrs.evolve(
        caps, text_document=attrs.evolve(caps.text_document, completion=lsp.CompletionClientCapabilities())
    )


def _progress_end(message: Message) -> bool:
    value = (message.get("params") or {}).get("value") if message.get("method") == "$/progress" else None
    return isinstance(value, dict) and value.get("kind") == "end"


async def drive(session: Session, command: list[str], log_path: Path) -> None:
    await session.client.start(command, log_path)
    session.started = time.monotonic()  # the clock runs from the server process's start
    loaded = session.expect(_progress_end)
    await session.client.initialize(
        {"debounce": {"minMs": 0, "maxMs": 0, "initialMs": 0}}, capabilities(), root_uri="file:///demo"
    )
    await asyncio.wait_for(loaded, 600.0)
    await session.call("codegeex/status", None)

    session.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": PYTHON_URI, "languageId": "python", "version": 1, "text": PYTHON_TEXT}},
    )
    line, character = PYTHON_CURSOR
    shown = first_item_text(
        await session.call("textDocument/inlineCompletion", inline_params(PYTHON_URI, line, character))
    )
    if len(shown) > 3 and "\n" not in shown[:3]:
        # The user types the first three characters of the ghost text: served without the model.
        insert(session, PYTHON_URI, 2, line, character, shown[:3])
        await session.call("textDocument/inlineCompletion", inline_params(PYTHON_URI, line, character + 3))
    session.notify("codegeex/dismissed", {"uri": PYTHON_URI})

    session.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": RUST_URI, "languageId": "rust", "version": 1, "text": RUST_TEXT}},
    )
    line, character = RUST_CURSOR
    await session.call("textDocument/inlineCompletion", inline_params(RUST_URI, line, character))
    await session.call("textDocument/inlineCompletion", inline_params(RUST_URI, line, character))  # cache hit
    session.notify("codegeex/accepted", {"uri": RUST_URI})
    line, character, typed = RUST_TYPED
    insert(session, RUST_URI, 2, line, character, typed)
    await session.call(
        "textDocument/completion",
        {
            "textDocument": {"uri": RUST_URI},
            "position": {"line": line, "character": len(typed) - 1},
            "context": {"triggerKind": 1},
        },
    )

    # A request the client gives up on: $/cancelRequest stops the decode within a token.
    msg_id, future = session.client.inline(PYTHON_URI, 4, 0, invoked=True)
    await asyncio.sleep(0.2)
    session.client.cancel(msg_id)
    await asyncio.gather(asyncio.wrap_future(future), return_exceptions=True)  # a result or the cancel error

    await session.call("codegeex/status", None)
    await session.client.stop()  # shutdown, exit, and the process's exit code


def render(session: Session, command: list[str], model: str = "the embedded default model") -> str:
    out = [
        "# codegeex-lsp: a recorded LSP session",
        "",
        "Recorded with `python docs/transcripts/record_lsp_session.py` against",
        f"`{' '.join(command)}` ({model}), stdio, UTF-16 positions.",
        "Every JSON-RPC message in either direction, in order; times are milliseconds since the",
        "server process started. `window/logMessage` records carry the request id in brackets.",
        "",
        f"Server exit code: {session.client.returncode}.",
        "",
    ]
    for stamp, direction, message in session.log:
        method = message.get("method") or f"response #{message.get('id')}"
        out.append(f"### {stamp:8.0f} ms · {direction} · `{method}`")
        out.append("")
        out.append("```json")
        out.append(json.dumps(message, indent=2, ensure_ascii=False))
        out.append("```")
        out.append("")
    return "\n".join(out)


async def record(command: list[str]) -> Session:
    session = Session()
    with tempfile.TemporaryDirectory(prefix="record-lsp-") as tmp:
        log_path = Path(tmp) / "server.log"
        try:
            await drive(session, command, log_path)
        except BaseException:
            if log_path.exists():
                print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            await session.client.stop()
            raise
    return session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the embedded model")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--quant", choices=("int4", "none"), help="default: the server's (int4)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("lsp-session.md")))
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "codegeex_lsp.cli", "serve", "--threads", args.threads]
    if args.model:
        command += ["--model", args.model]
    if args.quant:
        command += ["--quant", args.quant]
    session = asyncio.run(record(command))
    shown = ["codegeex-lsp", *command[3:]]
    model = f"model {args.model}" if args.model else "the embedded default model"
    Path(args.out).write_text(render(session, shown, model), encoding="utf-8")
    print(f"wrote {args.out} ({len(session.log)} messages)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
