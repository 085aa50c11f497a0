"""`--through-lsp`: the same tasks as `textDocument/inlineCompletion` requests to `codegeex-lsp serve`.

The project's one LSP client (`codegeex_lsp.lsp_client`, pygls): initialize with UTF-16 positions,
inline completion and the benchmark's settings as initializationOptions, wait for `codegeex/status`
to say ready, then per task didOpen the holed document, ask at the cursor with triggerKind Invoked
(no debounce; a mid-line cursor still gets a LINE completion, as when a user asks explicitly), take
the first item's insertText and range, and didClose, so no task sees another as an open document
(cross-file references) or inherits its typed-through state. The server's stderr goes to a log
file beside the results; it runs the model in a private worker and records no telemetry where its
command line has those options (`ISOLATION_FLAGS`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codegeex_lsp.bench.infill.infillers import Infill, InfillerInfo, request_mode
from codegeex_lsp.bench.infill.tasks import DOCUMENT_ROOT, InfillTask
from codegeex_lsp.context import Document, Position
from codegeex_lsp.engine.load import quant_label
from codegeex_lsp.errors import ModelError
from codegeex_lsp.lsp_client import SyncLspClient
from codegeex_lsp.server.options import ModelOptions

READY_TIMEOUT_S = 900.0
REQUEST_TIMEOUT_S = 900.0
_INVOKED = 1  # lsp.InlineCompletionTriggerKind.Invoked


# Where the server has them: a model worker of its own (not one shared with the user's editors,
# and none left running after the benchmark), and no benchmark requests in the user's local stats.
ISOLATION_FLAGS: tuple[tuple[str, ...], ...] = (("--worker", "private"), ("--no-telemetry",))


def serve_command(model: ModelOptions) -> list[str]:
    """`codegeex-lsp serve` for `model`, with this interpreter (the same installation)."""
    command = [sys.executable, "-m", "codegeex_lsp.cli", "serve", "--model", model.name]
    command += ["--dtype", model.dtype, "--quant", model.quant, "--threads", str(model.threads)]
    if model.format:
        command += ["--format", model.format]
    if model.cache_dir:
        command += ["--cache-dir", model.cache_dir]
    known = serve_flags()
    for flag in ISOLATION_FLAGS:
        if flag[0] in known:
            command += flag
    return command


def serve_flags() -> set[str]:
    """The option strings `codegeex-lsp serve` accepts in this installation."""
    from codegeex_lsp.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {option for action in commands.choices["serve"]._actions for option in action.option_strings}


def served_info(status: dict[str, Any]) -> InfillerInfo:
    """What the report records of a server's model: its own `codegeex/status` labels."""
    return InfillerInfo(
        name=str(status.get("model")),
        model_hash="unknown (served)",
        quant=str(status.get("quant")),
        format=str(status.get("format")),
    )


class LspInfiller:
    """Each task through a real `codegeex-lsp serve` process."""

    def __init__(
        self,
        model: ModelOptions,
        settings: dict[str, Any],
        log_path: Path,
        *,
        command: Callable[[ModelOptions], list[str]] = serve_command,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.client = SyncLspClient(command(model), log_path, name="codegeex-lsp bench infill")
        try:
            self.client.initialize(settings, root_uri=f"file://{DOCUMENT_ROOT}")
            wanted = quant_label(model.quant)
            status = self._wait_ready(ready_timeout_s, wanted)
            served = str(status.get("quant"))
            if served != wanted:
                raise ModelError(f"asked the server for {wanted}, it serves {served}")
        except BaseException:
            self.client.close()
            raise
        self.info = served_info(status)

    def _wait_ready(self, timeout_s: float, wanted: str) -> dict[str, Any]:
        """The status once the model serves the weights asked for (`wanted`, a quant label): a server
        without every int4 rung serves bf16 or the first rung while it builds, and a benchmark must
        not mix them. Between two rungs' builds it is briefly ready and idle: that waits too."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.client.call("codegeex/status", {}, REQUEST_TIMEOUT_S) or {}
            building = status.get("background") is not None
            ready = status.get("state") == "ready" and not building
            if ready and (str(status.get("quant")) == wanted or time.monotonic() > deadline):
                return status
            if building:
                deadline = max(deadline, time.monotonic() + timeout_s)  # a build reports progress
            if status.get("state") == "error":
                raise ModelError(f"the language server could not load the model: {status.get('error')}")
            if time.monotonic() > deadline:
                raise ModelError(f"the language server did not load the model in {timeout_s:.0f} s")
            time.sleep(0.2)

    def infill(self, task: InfillTask) -> Infill:
        started = time.perf_counter()
        cursor = len(task.prefix)
        doc = Document(task.uri, task.holed, task.lsp_language, version=1, encoding="utf-16")
        position = doc.position_at(cursor)
        self.client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": task.uri,
                    "languageId": task.lsp_language,
                    "version": 1,
                    "text": task.holed,
                }
            },
        )
        try:
            result = self.client.call(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": task.uri},
                    "position": {"line": position.line, "character": position.character},
                    "context": {"triggerKind": _INVOKED},
                },
                REQUEST_TIMEOUT_S,
            )
        finally:
            self.client.notify("textDocument/didClose", {"textDocument": {"uri": task.uri}})
        seconds = time.perf_counter() - started
        mode = request_mode(task, task.editor_mode, "context")
        items = (result or {}).get("items", []) if isinstance(result, dict) else (result or [])
        if not items:
            return Infill("", cursor, cursor, mode, seconds, {"items": 0})
        text = items[0]["insertText"]
        text = text["value"] if isinstance(text, dict) else text
        start, end = cursor, cursor
        if span := items[0].get("range"):
            start = doc.offset_at(Position(span["start"]["line"], span["start"]["character"]))
            end = doc.offset_at(Position(span["end"]["line"], span["end"]["character"]))
        return Infill(text, start, end, mode, seconds, {"items": len(items)})

    def close(self) -> None:
        self.client.close()
