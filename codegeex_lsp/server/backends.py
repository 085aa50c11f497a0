"""Where completions come from: the model worker (default), the server's own process, or a remote server.

A backend turns `ModelOptions` into a `Session` (blocking, on the loader thread); a session is a
`complete.Generator` (raw candidates, blocking, one at a time, on the model thread; the completer
post-processes them) and names its cache keys. The host
(loader.py) swaps sessions when the options change; the completer (completion.py) only sees the
session's small interface, so the three backends behave the same to the editor.

- `WorkerBackend`: the model runs in a worker process (worker_client.py): shared per-user daemon
  or private child. The server never imports torch.
- `InProcessBackend` (`--in-process`, for debugging): the engine in this process, as before.
- `OpenAIBackend` (`--backend openai`): any OpenAI-compatible `/v1/completions` server.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.complete import Generator
from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.prompt.types import FimRequest
from codegeex_lsp.protocol import Completion
from codegeex_lsp.protocol import Progress as TaskProgress
from codegeex_lsp.server.options import BackendOptions, ModelOptions
from codegeex_lsp.server.scheduler import token_delay_hook

if TYPE_CHECKING:
    from codegeex_lsp.engine.int4_upgrade import Int4Upgrade
    from codegeex_lsp.engine.service import CompletionService
    from codegeex_lsp.remote.openai import OpenAIClient, OpenAIOptions
    from codegeex_lsp.server.worker_client import WorkerClient

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
Tasks = Callable[[TaskProgress], None]  # steps of a background task (the int4 build), any thread


@dataclass(frozen=True)
class ModelInfo:
    name: str
    format: str
    n_context: int
    quant: str = ""  # the weights served at load: "none" or "int4 (<recipe>)"; "" when unknown (remote)


class Session(Generator, Protocol):
    """A loaded backend: a `complete.Generator` (`cache_key` there is the document URI) that also
    names the cache keys of its requests."""

    info: ModelInfo
    owner: object  # what the session holds (a loaded model, a worker connection); shared on reuse

    def cache_key(self, request: FimRequest, options: CompletionOptions) -> Hashable: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    kind: str

    def load(
        self, model: ModelOptions, previous: Session | None, progress: Progress, tasks: Tasks | None = None
    ) -> Session:
        """`tasks` gets the steps of background work the session starts (int4 build, then switch)."""
        ...


def engine_options(model: ModelOptions) -> EngineOptions:
    return EngineOptions(
        model=model.name,
        dtype=model.dtype,
        quant=model.quant,
        threads=model.threads,
        cache_dir=model.cache_dir,
        trust_remote_code=model.trust_remote_code,
    )


def _same_weights(a: ModelOptions, b: ModelOptions) -> bool:
    return replace(a, format=None) == replace(b, format=None)


# -- in process ------------------------------------------------------------------------------------


class InProcessSession:
    def __init__(self, service: CompletionService, model: ModelOptions, token_delay_ms: float) -> None:
        self.model = model
        self.owner = service.loaded
        self.upgrade: Int4Upgrade | None = None
        self._token_delay_ms = token_delay_ms
        self.switch(service)

    def switch(self, service: CompletionService) -> None:
        """Serve from `service` from the next request on (a decode running keeps its weights)."""
        loaded = service.loaded
        self.service = service
        self.info = ModelInfo(loaded.name, service.format.name, int(loaded.model.max_seq_len), loaded.quant)
        self.generate = functools.partial(service.generate, on_token=token_delay_hook(self._token_delay_ms))

    def upgrade_in_background(self, upgrade: Int4Upgrade) -> None:
        """Run `upgrade` on its own thread, then switch to its int4 weights."""
        from codegeex_lsp.engine.service import CompletionService

        def run() -> None:
            try:
                upgrade.run(lambda loaded: self.switch(CompletionService(loaded, self.model.format)))
            finally:
                self.upgrade = None

        self.upgrade = upgrade
        threading.Thread(target=run, name="codegeex-int4-build", daemon=True).start()

    def cache_key(self, request: FimRequest, options: CompletionOptions) -> Hashable:
        # What the decode reads: the prompt's ids and forced word, the mode (its stops), the options.
        prompt = self.service.build(request, options)
        return (prompt.token_ids, prompt.forced_text, request.mode, options)

    def describe(self) -> dict[str, Any]:
        return {"kind": "in-process"}

    def close(self) -> None:
        upgrade = self.upgrade
        if upgrade is not None:
            upgrade.stop()


class InProcessBackend:
    kind = "in-process"

    def __init__(self, token_delay_ms: float = 0.0) -> None:
        self.token_delay_ms = token_delay_ms

    def load(
        self, model: ModelOptions, previous: Session | None, progress: Progress, tasks: Tasks | None = None
    ) -> Session:
        from codegeex_lsp.engine.int4_upgrade import plan
        from codegeex_lsp.engine.service import CompletionService

        upgrade = None
        if (
            isinstance(previous, InProcessSession)
            and previous.upgrade is None
            and _same_weights(previous.model, model)
        ):
            progress(f"switching prompt format to {model.format or 'auto'}")
            service = CompletionService(previous.service.loaded, model.format)
        else:
            engine = engine_options(model)
            if tasks is not None:
                engine, upgrade = plan(engine, tasks, progress)
            service = CompletionService.load(engine, model.format, progress)
        session = InProcessSession(service, model, self.token_delay_ms)
        if upgrade is not None:
            session.upgrade_in_background(upgrade)
        return session


# -- model worker ----------------------------------------------------------------------------------


class WorkerSession:
    def __init__(self, client: WorkerClient, info: ModelInfo, format_name: str | None, token_delay_ms: float):
        self.client = client
        self.owner = client
        self.info = info
        self._format = format_name
        self._token_delay_ms = token_delay_ms

    def cache_key(self, request: FimRequest, options: CompletionOptions) -> Hashable:
        # The worker holds the tokenizer; the request itself (already bounded) is the key here.
        return (self.info.format, request, options)

    def generate(
        self,
        request: FimRequest,
        options: CompletionOptions,
        *,
        cancel: Cancellation | None = None,
        cache_key: Hashable | None = None,
    ) -> Completion:
        return self.client.complete(
            request,
            options,
            self._format,
            cancel=cancel,
            token_delay_ms=self._token_delay_ms,
            document=None if cache_key is None else str(cache_key),
        )

    def describe(self) -> dict[str, Any]:
        client = self.client
        out: dict[str, Any] = {
            "kind": "worker",
            "mode": client.mode,
            "key": client.key,
            "connected": client.connected,
            "restarts": max(0, client.connections - 1),
            "crashes": client.crashes,
            "pid": client.pid,
        }
        status = client.status(timeout_s=1.0)
        if status is not None:
            out.update(
                pid=status.pid,
                state=status.state,
                loads=status.loads,
                clients=status.clients,
                requests=status.requests,
                uptimeSeconds=round(status.uptime_s, 1),
                idleTimeoutSeconds=status.idle_timeout_s,
            )
        return out

    def close(self) -> None:
        self.client.close()


class WorkerBackend:
    kind = "worker"

    def __init__(
        self, mode: str = "shared", idle_timeout_s: float = 600.0, token_delay_ms: float = 0.0
    ) -> None:
        self.mode = mode
        self.idle_timeout_s = idle_timeout_s
        self.token_delay_ms = token_delay_ms

    def load(
        self, model: ModelOptions, previous: Session | None, progress: Progress, tasks: Tasks | None = None
    ) -> Session:
        from codegeex_lsp.server.worker_client import WorkerClient

        engine = engine_options(model)
        if isinstance(previous, WorkerSession) and previous.client.engine == engine:
            client = previous.client
        else:
            client = WorkerClient(
                engine,
                mode=self.mode,
                idle_timeout_s=self.idle_timeout_s,
                allow_token_delay=self.token_delay_ms > 0,
            )
        client.on_progress = progress
        if tasks is not None:
            client.on_task = tasks
        try:
            prepared = client.prepare(model.format)
        except Exception:
            if client is not getattr(previous, "client", None):
                client.close()
            raise
        progress(f"model worker pid {client.pid}: {prepared.model} ready ({prepared.loads} load(s))")
        info = ModelInfo(prepared.model, prepared.format, prepared.n_context, prepared.quant)
        return WorkerSession(client, info, model.format, self.token_delay_ms)


# -- remote ----------------------------------------------------------------------------------------


class OpenAISession:
    def __init__(self, client: OpenAIClient) -> None:
        self.client = client
        self.owner = client
        self.info = ModelInfo(client.model_name, client.format_name, client.options.n_context)
        self.generate = client.generate

    def cache_key(self, request: FimRequest, options: CompletionOptions) -> Hashable:
        return (request, options)

    def describe(self) -> dict[str, Any]:
        return {"kind": "openai", **self.client.describe()}

    def close(self) -> None:
        self.client.close()


class OpenAIBackend:
    kind = "openai"

    def __init__(self, options: OpenAIOptions) -> None:
        self.options = options

    def load(
        self, model: ModelOptions, previous: Session | None, progress: Progress, tasks: Tasks | None = None
    ) -> Session:
        from codegeex_lsp.remote.openai import OpenAIClient

        options = dataclasses.replace(
            self.options,
            model=self.options.model or model.name,
            format=model.format or self.options.format,
        )
        client = OpenAIClient(options)
        progress(f"checking {options.base_url}")
        client.probe(progress)
        return OpenAISession(client)


def make_backend(options: BackendOptions, token_delay_ms: float = 0.0) -> Backend:
    """The backend `serve`'s flags asked for."""
    if options.kind == "in-process":
        return InProcessBackend(token_delay_ms)
    if options.kind == "openai":
        if options.openai is None:
            raise ValueError("the openai backend needs its OpenAIOptions")
        return OpenAIBackend(options.openai)
    if options.kind != "worker":
        raise ValueError(f"unknown backend {options.kind!r}")
    return WorkerBackend(options.worker_mode, options.idle_timeout_s, token_delay_ms)
