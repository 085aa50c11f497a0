"""What `codegeex/status` reports: the model's state and local counters.

Counters live only in this process (nothing is sent anywhere). They are touched on the event loop
thread only, so plain ints suffice.

Custom methods (namespaced `codegeex/…`, STYLE 7):

- request `codegeex/status` -> the object `StatusReport.to_wire` returns;
- notification `codegeex/accepted` and `codegeex/dismissed`, params `{"uri": str}` (optional):
  the client tells us what happened to the last suggestion shown for that document.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

STATUS = "codegeex/status"
ACCEPTED = "codegeex/accepted"
DISMISSED = "codegeex/dismissed"

ModelState = Literal["idle", "loading", "ready", "error"]


@dataclass
class Counters:
    """Completion requests and what became of them.

    `requests`: inline + completion requests received; `served`: answered with a suggestion;
    `empty`: answered without one (NONE scope, disabled language, unknown document, loading, empty
    model output); `cancelled`: by `$/cancelRequest` or superseded by a newer request for the same
    document; `cache_hits`/`typed_through`: served without a model call; `decodes`: model calls
    started; `errors`: requests that failed inside the server (answered empty, logged).
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
    accepted: int = 0
    dismissed: int = 0


@dataclass
class ModelStatus:
    """The model slot: what is (being) loaded and how that went."""

    state: ModelState = "idle"
    model: str | None = None
    format: str | None = None
    error: str | None = None
    load_s: float | None = None
    generation: int = 0


@dataclass
class StatusReport:
    model: ModelStatus = field(default_factory=ModelStatus)
    counters: Counters = field(default_factory=Counters)
    position_encoding: str = "utf-16"
    open_documents: int = 0
    cache_entries: int = 0

    def to_wire(self) -> dict[str, Any]:
        model = self.model
        return {
            "state": model.state,
            "model": model.model,
            "format": model.format,
            "error": model.error,
            "loadSeconds": None if model.load_s is None else round(model.load_s, 3),
            "positionEncoding": self.position_encoding,
            "openDocuments": self.open_documents,
            "cacheEntries": self.cache_entries,
            "counters": _camel_keys(asdict(self.counters)),
        }


def _camel_keys(values: dict[str, Any]) -> dict[str, Any]:
    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part.title() for part in rest)

    return {camel(k): v for k, v in values.items()}
