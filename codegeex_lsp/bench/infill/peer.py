"""The peer baseline: llama.cpp's own `llama-server` `/infill` on the same GGUF, as llama.vscode asks it.

What a user gets from plain llama.cpp with an editor plugin is the bar our context, prompt and
post-processing must clear. The request carries llama.vscode's fields (`input_prefix`: the lines
before the cursor line, `prompt`: the cursor line up to the cursor, `input_suffix`: everything
after the cursor, `input_extra` (no other files here), `n_indent`, `n_predict` 128, `cache_prompt`),
with greedy sampling (temperature 0, top_k 1) in place of its top-k/top-p, so runs repeat. A LINE
task's answer is cut at its first newline, as llama.vscode accepts one line.

The server binary: `--llama-server PATH`, else $CODEGEEX_LLAMA_SERVER, else the host's build that
scripts/install-llama-cpp made (`bench.llama_server`, which starts, waits for and stops it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from codegeex_lsp.bench.infill.infillers import Infill, InfillerInfo
from codegeex_lsp.bench.infill.tasks import KIND_MODES, InfillTask
from codegeex_lsp.bench.llama_server import (  # noqa: F401  (find_llama_server, model_gguf: this bench's API)
    ENV_BINARY,
    READY_TIMEOUT_S,
    LlamaServer,
    find_llama_server,
    model_gguf,
)
from codegeex_lsp.errors import CodegeexError, ModelError

PEERS: tuple[str, ...] = ("llama-server",)
N_PREDICT = 128


class PeerMissing(CodegeexError):
    """The peer cannot run here (no binary); the report says so instead of a number."""


def infill_request(task: InfillTask) -> dict[str, Any]:
    """The `/infill` body for a task: llama.vscode's fields, greedy.

    A LINE task also sends `stop: ["\\n"]`. Its answer is cut at the first newline anyway and greedy
    decoding is deterministic, so the text before that newline is the same with or without the stop;
    the stop only spares decoding the up to 128 tokens that the cut throws away (the peer's full
    single-line runs took ~11 s per task without it)."""
    line_start = task.prefix.rfind("\n") + 1
    line = task.prefix[line_start:]
    body: dict[str, Any] = {
        "input_prefix": task.prefix[:line_start],
        "prompt": line,
        "input_suffix": task.suffix,
        "input_extra": [],
        "n_predict": N_PREDICT,
        "n_indent": len(line) - len(line.lstrip(" \t")),
        "temperature": 0.0,
        "top_k": 1,
        "samplers": ["top_k"],
        "stream": False,
        "cache_prompt": True,
    }
    if KIND_MODES[task.kind] == "LINE":
        body["stop"] = ["\n"]
    return body


def cut_answer(task: InfillTask, content: str) -> str:
    """A LINE task keeps the first line only (llama.vscode's single-line acceptance)."""
    return content.split("\n", 1)[0] if KIND_MODES[task.kind] == "LINE" else content


class LlamaServerInfiller(LlamaServer):
    """One `llama-server` process for the whole run."""

    def __init__(
        self,
        binary: Path,
        gguf: Path,
        gguf_sha256: str,
        log_path: Path,
        *,
        threads: int = 0,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        super().__init__(binary, gguf, log_path, threads=threads, ready_timeout_s=ready_timeout_s)
        self.info = InfillerInfo(
            name=f"llama-server /infill ({gguf.name})",
            model_hash=gguf_sha256,
            quant="gguf as stored",
            format="llama.cpp /infill (llama.vscode request, greedy)",
        )

    def infill(self, task: InfillTask) -> Infill:
        started = time.perf_counter()
        cursor = len(task.prefix)
        try:
            response = self.client.post("/infill", json=infill_request(task))
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ModelError(f"llama-server /infill failed for {task.task_id}: {exc}") from exc
        content = str(body.get("content", ""))
        detail = {
            "tokens_predicted": body.get("tokens_predicted"),
            "tokens_evaluated": body.get("tokens_evaluated"),
            "stop_type": body.get("stop_type"),
        }
        mode = KIND_MODES[task.kind]
        return Infill(cut_answer(task, content), cursor, cursor, mode, time.perf_counter() - started, detail)
