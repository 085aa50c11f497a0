"""The peer baseline: llama.cpp's own `llama-server` `/infill` on the same GGUF, as llama.vscode asks it.

What a user gets from plain llama.cpp with an editor plugin is the bar our context, prompt and
post-processing must clear. The request carries llama.vscode's fields (`input_prefix`: the lines
before the cursor line, `prompt`: the cursor line up to the cursor, `input_suffix`: everything
after the cursor, `input_extra` (no other files here), `n_indent`, `n_predict` 128, `cache_prompt`),
with greedy sampling (temperature 0, top_k 1) in place of its top-k/top-p, so runs repeat. A LINE
task's answer is cut at its first newline, as llama.vscode accepts one line.

The server binary: `--llama-server PATH`, else $CODEGEEX_LLAMA_SERVER, else the host's build that
scripts/install-llama-cpp made (`bench.llama_cpp`: `<cache>/llama.cpp/*/bin/llama-server` for this
CPU's flags); its shared libraries are found beside it. The bench starts it
on a free localhost port, waits for `/health`, and stops it at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from codegeex_lsp.bench.infill.infillers import Infill, InfillerInfo
from codegeex_lsp.bench.infill.tasks import KIND_MODES, InfillTask
from codegeex_lsp.config import cache_dir
from codegeex_lsp.errors import CodegeexError, ModelError

PEERS: tuple[str, ...] = ("llama-server",)
ENV_BINARY = "CODEGEEX_LLAMA_SERVER"
N_PREDICT = 128
CONTEXT_TOKENS = 4096
READY_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 20.0


class PeerMissing(CodegeexError):
    """The peer cannot run here (no binary); the report says so instead of a number."""


def find_llama_server(explicit: str | os.PathLike[str] | None = None) -> tuple[Path | None, str]:
    """(binary, "") or (None, why it is missing)."""
    from codegeex_lsp.bench import llama_cpp

    if explicit:
        path = Path(explicit).expanduser()
        return (path, "") if _runnable(path) else (None, f"--llama-server {path} is not an executable file")
    if env := os.environ.get(ENV_BINARY):
        path = Path(env).expanduser()
        return (path, "") if _runnable(path) else (None, f"${ENV_BINARY}={path} is not an executable file")
    try:
        path = llama_cpp.binary("llama-server")
    except llama_cpp.LlamaCppMissing as exc:
        return None, str(exc)
    return (path, "") if _runnable(path) else (None, f"{path} is not executable")


def model_gguf(spec: str) -> tuple[Path, str]:
    """(GGUF file, sha256) for a model spec: the embedded model's assembled file or a .gguf path."""
    from codegeex_lsp.engine.embedded import EMBEDDED_MODELS, assemble, sha256_file

    embedded = EMBEDDED_MODELS.get(spec)
    if embedded is not None:
        gguf = cache_dir() / "models" / f"{embedded.name}.gguf"
        if not gguf.is_file() or gguf.stat().st_size != embedded.size_bytes:
            assemble(embedded, gguf)
        return gguf, embedded.sha256
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path, sha256_file(path)
    raise ModelError(
        f"the llama-server peer needs a GGUF model; {spec!r} is neither an embedded name nor a .gguf"
    )


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


class LlamaServerInfiller:
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
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port)]
        command += ["-c", str(CONTEXT_TOKENS), "-np", "1"]
        if threads > 0:
            command += ["-t", str(threads)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, [str(binary.parent), env.get("LD_LIBRARY_PATH")])
        )
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        self.client = httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S, trust_env=False)
        try:
            self._wait_ready(ready_timeout_s)
        except BaseException:
            self.close()
            raise
        self.info = InfillerInfo(
            name=f"llama-server /infill ({gguf.name})",
            model_hash=gguf_sha256,
            quant="gguf as stored",
            format="llama.cpp /infill (llama.vscode request, greedy)",
        )

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise ModelError(f"llama-server exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                if self.client.get("/health", timeout=5.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ModelError(f"llama-server was not healthy in {timeout_s:.0f} s; see {self.log_path}")
            time.sleep(0.2)

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

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
