"""A `llama-server` process for the benches that ask the peer: find it, start it, wait, stop it.

The binary: an explicit path, else $CODEGEEX_LLAMA_SERVER, else the host's build that
scripts/install-llama-cpp made (`bench.llama_cpp`: `<cache>/llama.cpp/*/bin/llama-server` for this
CPU's flags); its shared libraries are found beside it. The server listens on a free localhost
port, is asked once `/health` answers, and is stopped at the end (terminate, then kill).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

from codegeex_lsp.config import cache_dir
from codegeex_lsp.errors import ModelError

ENV_BINARY = "CODEGEEX_LLAMA_SERVER"
CONTEXT_TOKENS = 4096
READY_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 20.0


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


class LlamaServer:
    """One `llama-server` process (one slot, `threads` threads) and an HTTP client for it."""

    def __init__(
        self,
        binary: Path,
        gguf: Path,
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
