"""Who fills the hole: the canonical middle, the completion service directly, or (in `lsp`) a server.

Every infiller answers an `InfillTask` with an `Infill`: the text to insert and the span of the
holed document it replaces (the cursor, unless a server's edit range says otherwise). The direct
path takes the language server's own request path (the context stage at the cursor, then
`complete.complete_request` with the server's budgets and per-mode token limits) so that `--through-lsp` differs from it only by the transport and the mode decision it cannot be
told to override.

The mode: `--mode kind` (the direct path's default) asks LINE for single-line masks and BLOCK for
multi-line and span masks; `--mode context` takes the context stage's decision, a NONE (cursor
mid-line) upgraded as the server does for an explicitly invoked request (`mode_when_invoked`: BLOCK
at the indentation of a line of code, else LINE). The server always
decides by the context stage, so `--through-lsp` implies `--mode context`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from codegeex_lsp.bench.infill.tasks import DOCUMENT_ROOT, KIND_MODES, InfillTask
from codegeex_lsp.complete import complete_request
from codegeex_lsp.config import EngineOptions
from codegeex_lsp.context import Document, build_context
from codegeex_lsp.context.scope import mode_when_invoked
from codegeex_lsp.engine.load import quant_label
from codegeex_lsp.errors import ModelError
from codegeex_lsp.server.completion import completion_options, context_options
from codegeex_lsp.server.options import ModelOptions, ServerOptions, parse_options

MODE_SOURCES: tuple[str, ...] = ("kind", "context")


@dataclass(frozen=True)
class Infill:
    """`text` replaces `[start, end)` of the task's holed document (str offsets)."""

    text: str
    start: int
    end: int
    mode: str = ""
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def program(self, task: InfillTask) -> str:
        """The document the tests run on: the holed document with this infill applied.

        A whole-line hole (HumanEval-Infilling single-line) takes the answer's first line and its
        newline, whoever answered: an editor accepts one line there.
        """
        holed = task.holed
        text = self.text.split("\n", 1)[0] + "\n" if task.whole_line else self.text
        return holed[: self.start] + text + holed[self.end :]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class InfillerInfo:
    """What the report records about an infiller."""

    name: str
    model_hash: str
    quant: str = "none"
    format: str = ""


class Infiller(Protocol):
    info: InfillerInfo

    def infill(self, task: InfillTask) -> Infill:
        """The middle for one task."""
        ...

    def close(self) -> None:
        """Release the model or the server process."""
        ...


def request_mode(task: InfillTask, editor_mode: str, mode_source: str) -> str:
    """The mode a request is made in: by the mask kind, or the context stage's (NONE becomes what
    the server gives an invoked request there, `mode_when_invoked`)."""
    if mode_source == "kind":
        return KIND_MODES[task.kind]
    return mode_when_invoked(task.prefix, task.suffix) if editor_mode == "NONE" else editor_mode


def server_settings(max_tokens_line: int, max_tokens_block: int, carry_line: bool = True) -> dict[str, Any]:
    """The client settings both paths use (the wire form the server gets as initializationOptions)."""
    return {
        "debounce": {"minMs": 0, "maxMs": 0, "initialMs": 0},
        "completion": {"maxTokensLine": max_tokens_line, "maxTokensBlock": max_tokens_block},
        "context": {"carryLine": carry_line},
    }


class CanonicalInfiller:
    """Inserts the true middle: every task must pass (the harness checks itself)."""

    info = InfillerInfo(name="canonical", model_hash="canonical")

    def infill(self, task: InfillTask) -> Infill:
        cursor = len(task.prefix)
        return Infill(task.middle, cursor, cursor, mode=KIND_MODES[task.kind])

    def close(self) -> None:
        pass


class EngineInfiller:
    """The completion service in this process, driven exactly as the server drives it."""

    def __init__(
        self,
        model: ModelOptions,
        quant: str,
        settings: dict[str, Any],
        mode_source: str,
    ) -> None:
        from codegeex_lsp.engine.service import CompletionService

        options, warnings = parse_options(settings)
        if warnings:
            raise ValueError(f"bad infill server settings: {'; '.join(warnings)}")  # a bug here
        self.options: ServerOptions = dataclasses.replace(options, model=model)
        self.mode_source = mode_source
        engine = EngineOptions(
            model=model.name,
            dtype=model.dtype,
            quant=quant,
            threads=model.threads,
            trust_remote_code=model.trust_remote_code,
            cache_dir=model.cache_dir,
        )
        self.service = CompletionService.load(engine, model.format)
        if quant != "none":
            _check_quantized(self.service, quant)
        loaded = self.service.loaded
        self.info = InfillerInfo(
            name=loaded.name,
            model_hash=loaded.source_sha256 or "unknown",
            quant=quant_label(quant),
            format=self.service.format.name,
        )

    def infill(self, task: InfillTask) -> Infill:
        started = time.perf_counter()
        cursor = len(task.prefix)
        doc = Document(task.uri, task.holed, task.lsp_language, version=1)
        ctx = build_context(doc, doc.position_at(cursor), (), context_options(self.options, DOCUMENT_ROOT))
        mode = request_mode(task, ctx.mode, self.mode_source)
        ctx = dataclasses.replace(ctx, mode=mode)
        result = complete_request(
            ctx,
            completion_options(self.options, mode),
            self.service,
            n_context=self.service.loaded.model.max_seq_len,
        )
        detail = {
            "prompt_tokens": result.prompt_tokens,
            "generated_tokens": result.generated_tokens,
            "finish_reason": result.finish_reason,
        }
        return Infill(result.completion, cursor, cursor, mode, time.perf_counter() - started, detail)

    def close(self) -> None:
        pass


def _check_quantized(service: Any, quant: str) -> None:
    """Refuse to label fp weights int4: the quantized path swaps in modules from codegeex_lsp.quant."""
    modules = service.loaded.model.modules()
    if not any(type(module).__module__.startswith("codegeex_lsp.quant") for module in modules):
        raise ModelError(
            f"--quant {quant}: the engine loaded {service.loaded.name} without quantized layers "
            "(EngineOptions.quant is not wired into the engine yet); run with --quant none"
        )
