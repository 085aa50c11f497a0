"""Record a real `codegeex-lsp serve` session as a Markdown transcript of its JSON-RPC traffic.

    python docs/transcripts/record_lsp_session.py [--model NAME] [--out docs/transcripts/lsp-session.md]

Drives the server over stdio like an editor would: initialize (UTF-16, inline completion, progress),
waits for the model, opens a Python and a Rust file, asks for inline completions, types through a
suggestion, repeats a request (cache), uses the textDocument/completion fallback, cancels a request,
reads codegeex/status, then shuts down. Every message either way is logged with its time.
"""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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


class Session:
    def __init__(self, command: list[str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.log: list[tuple[float, str, dict[str, Any]]] = []
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 1
        threading.Thread(target=self._read, daemon=True).start()

    def _stamp(self) -> float:
        return (time.monotonic() - self.started) * 1000.0

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        while True:
            length = None
            while True:
                line = stdout.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line in (b"\r\n", b"\n") and length is not None:
                    break
            message = json.loads(stdout.read(length))
            self.log.append((self._stamp(), "server → client", message))
            self.inbox.put(message)

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        self.log.append((self._stamp(), "client → server", message))
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any) -> int:
        msg_id = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id

    def wait(self, predicate, timeout_s: float = 600.0) -> dict[str, Any]:
        """The next message matching `predicate`; answers the server's own requests meanwhile."""
        deadline = time.monotonic() + timeout_s
        while True:
            message = self.inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            if "method" in message and "id" in message:  # a request from the server
                result = [None] if message["method"] == "workspace/configuration" else None
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            if predicate(message):
                return message

    def call(self, method: str, params: Any) -> dict[str, Any]:
        msg_id = self.request(method, params)
        return self.wait(lambda m: m.get("id") == msg_id and "method" not in m)


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


def first_item_text(response: dict[str, Any]) -> str:
    items = (response.get("result") or {}).get("items") or []
    return items[0]["insertText"] if items else ""


def drive(session: Session) -> None:
    session.call(
        "initialize",
        {
            "processId": None,
            "rootUri": "file:///demo",
            "clientInfo": {"name": "record_lsp_session.py"},
            "capabilities": {
                "general": {"positionEncodings": ["utf-16"]},
                "window": {"workDoneProgress": True},
                "textDocument": {"synchronization": {}, "inlineCompletion": {}, "completion": {}},
            },
            "initializationOptions": {"debounce": {"minMs": 0, "maxMs": 0, "initialMs": 0}},
        },
    )
    session.notify("initialized", {})
    session.wait(lambda m: m.get("method") == "$/progress" and m["params"]["value"]["kind"] == "end")
    session.call("codegeex/status", None)

    session.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": PYTHON_URI, "languageId": "python", "version": 1, "text": PYTHON_TEXT}},
    )
    line, character = PYTHON_CURSOR
    shown = first_item_text(
        session.call("textDocument/inlineCompletion", inline_params(PYTHON_URI, line, character))
    )
    if len(shown) > 3 and "\n" not in shown[:3]:
        # The user types the first three characters of the ghost text: served without the model.
        insert(session, PYTHON_URI, 2, line, character, shown[:3])
        session.call("textDocument/inlineCompletion", inline_params(PYTHON_URI, line, character + 3))
    session.notify("codegeex/dismissed", {"uri": PYTHON_URI})

    session.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": RUST_URI, "languageId": "rust", "version": 1, "text": RUST_TEXT}},
    )
    line, character = RUST_CURSOR
    session.call("textDocument/inlineCompletion", inline_params(RUST_URI, line, character))
    session.call("textDocument/inlineCompletion", inline_params(RUST_URI, line, character))  # cache hit
    session.notify("codegeex/accepted", {"uri": RUST_URI})
    line, character, typed = RUST_TYPED
    insert(session, RUST_URI, 2, line, character, typed)
    session.call(
        "textDocument/completion",
        {
            "textDocument": {"uri": RUST_URI},
            "position": {"line": line, "character": len(typed) - 1},
            "context": {"triggerKind": 1},
        },
    )

    # A request the client gives up on: $/cancelRequest stops the decode within a token.
    msg_id = session.request("textDocument/inlineCompletion", inline_params(PYTHON_URI, 4, 0, invoked=True))
    time.sleep(0.2)
    session.notify("$/cancelRequest", {"id": msg_id})
    session.wait(lambda m: m.get("id") == msg_id and "method" not in m)

    session.call("codegeex/status", None)
    session.call("shutdown", None)
    session.notify("exit", None)
    session.proc.wait(60)


def render(session: Session, command: list[str]) -> str:
    out = [
        "# codegeex-lsp: a recorded LSP session",
        "",
        "Recorded with `python docs/transcripts/record_lsp_session.py` against",
        f"`{' '.join(command)}` (the embedded default model), stdio, UTF-16 positions.",
        "Every JSON-RPC message in either direction, in order; times are milliseconds since the",
        "server process started. `window/logMessage` records carry the request id in brackets.",
        "",
        f"Server exit code: {session.proc.returncode}.",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the embedded model")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--out", default=str(Path(__file__).with_name("lsp-session.md")))
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "codegeex_lsp.cli", "serve", "--threads", args.threads]
    if args.model:
        command += ["--model", args.model]
    session = Session(command)
    try:
        drive(session)
    finally:
        if session.proc.poll() is None:
            session.proc.kill()
    shown = ["codegeex-lsp", *command[3:]]
    Path(args.out).write_text(render(session, shown), encoding="utf-8")
    print(f"wrote {args.out} ({len(session.log)} messages)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
