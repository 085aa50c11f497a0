"""What `codegeex/status` reports: the model's state, the backend and local counters.

Counters live only in this process (nothing is sent anywhere; the per-language totals that
outlive it are telemetry.py's). They are touched on the event loop thread only, so plain ints
suffice. The method names are `codegeex_lsp.protocol`'s (re-exported here).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from codegeex_lsp.protocol import ACCEPTED, DISMISSED, STATUS

__all__ = ["ACCEPTED", "DISMISSED", "STATUS", "Counters", "ModelStatus", "StatusReport"]

ModelState = Literal["idle", "loading", "ready", "error"]

RECENT_DECODES = 256  # per-decode records kept for `recentDecodes` (bounded: a ring)


@dataclass
class Counters:
    """Completion requests and what became of them.

    `requests`: inline + completion requests received; `served`: answered with a suggestion;
    `empty`: answered without one (NONE scope, disabled language, unknown document, loading, empty
    model output); `cancelled`: by `$/cancelRequest` or superseded by a newer request for the same
    document; `cache_hits`/`typed_through`: served without a model call; `decodes`: model calls
    started; `errors`: requests that failed inside the server (answered empty, logged);
    `backend_errors`: requests the backend failed (worker crash, remote server down: answered
    empty, the next one tries again).
    """

    requests: int = 0
    served: int = 0
    empty: int = 0
    cancelled: int = 0
    superseded: int = 0
    cache_hits: int = 0
    typed_through: int = 0
    decodes: int = 0
    errors: int = 0
    backend_errors: int = 0
    accepted: int = 0
    dismissed: int = 0
    prefill_tokens: int = 0
    reused_tokens: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0


@dataclass
class ModelStatus:
    """The model slot: what is (being) loaded and how that went."""

    state: ModelState = "idle"
    model: str | None = None
    format: str | None = None
    error: str | None = None
    load_s: float | None = None
    generation: int = 0
    quant: str | None = None  # the weights served: "none" or "int4 (<recipe>)"
    task: str | None = None  # a background task running (protocol.INT4_BUILD) and its last step
    task_message: str | None = None
    task_percentage: int | None = None


@dataclass
class StatusReport:
    model: ModelStatus = field(default_factory=ModelStatus)
    counters: Counters = field(default_factory=Counters)
    position_encoding: str = "utf-16"
    open_documents: int = 0
    cache_entries: int = 0
    # One wire-ready record per model decode, newest last (see Completer._decode): request id,
    # firstTokenMs / totalMs from the request's arrival, token counts. For latency benchmarks.
    recent_decodes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_DECODES))

    def to_wire(self, backend: dict[str, Any] | None = None) -> dict[str, Any]:
        model = self.model
        return {
            "backend": backend or {},
            "state": model.state,
            "model": model.model,
            "format": model.format,
            "error": model.error,
            "loadSeconds": None if model.load_s is None else round(model.load_s, 3),
            "quant": model.quant,
            "background": None
            if model.task is None
            else {"task": model.task, "message": model.task_message, "percentage": model.task_percentage},
            "positionEncoding": self.position_encoding,
            "openDocuments": self.open_documents,
            "cacheEntries": self.cache_entries,
            "counters": _camel_keys(asdict(self.counters)),
            "recentDecodes": list(self.recent_decodes),
        }


def _camel_keys(values: dict[str, Any]) -> dict[str, Any]:
    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part.title() for part in rest)

    return {camel(k): v for k, v in values.items()}
