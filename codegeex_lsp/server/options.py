"""The server's options: a frozen dataclass tree with defaults, and its parser.

Options arrive twice at most per change: `initializationOptions` and
`workspace/didChangeConfiguration` (its `settings`, or the `codegeexLsp` section inside them).
The wire form is the tree below with camelCase keys (snake_case is accepted too):

    {"model": {"name": "qwen2.5-coder-0.5b", "format": null, "dtype": "auto", "quant": "int4", "threads": 0},
     "completion": {"maxTokens": null, "maxTokensLine": 48, "maxTokensBlock": 192},
     "debounce": {"minMs": 25, "maxMs": 300, "initialMs": 75},
     "languages": {"enabled": ["*"], "disabled": ["markdown"]},
     "context": {"prefixTokens": 1024, "suffixTokens": 256, "referenceTokens": 512, "carryLine": true},
     "cache": {"size": 128},
     "documents": {"maxBytes": 2000000}}

`"model": "<name>"` is short for `{"model": {"name": "<name>"}}`. An invalid or unknown value never
fails: it falls back to the base value (the command line's, else the default) and yields a warning
the server shows once with `window/showMessage`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codegeex_lsp.config import DEFAULT_MODEL

SECTION = "codegeexLsp"
"""The client-side settings section (VS Code `codegeexLsp.*`)."""


def _limits(lo: float | None = None, hi: float | None = None, choices: tuple[str, ...] | None = None):
    return {"min": lo, "max": hi, "choices": choices}


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load and how; a change reloads the model in the background."""

    name: str = DEFAULT_MODEL
    format: str | None = None
    dtype: str = field(default="auto", metadata=_limits(choices=("auto", "bfloat16", "float32")))
    quant: str = field(default="int4", metadata=_limits(choices=("int4", "none")))
    threads: int = field(default=0, metadata=_limits(0, 1024))
    cache_dir: str | None = None
    # Running a tokenizer's own Python code is the user's call on the command line, never a
    # (possibly workspace-provided) client setting's.
    trust_remote_code: bool = field(default=False, metadata={"cli_only": True})


@dataclass(frozen=True)
class DecodingSettings:
    """The `completion` section of the settings: token limits per mode and sampling, from which one
    request's `config.CompletionOptions` is resolved. `max_tokens` (when set) caps both modes."""

    max_tokens: int | None = field(default=None, metadata=_limits(1, 4096))
    max_tokens_line: int = field(default=48, metadata=_limits(1, 4096))
    max_tokens_block: int = field(default=192, metadata=_limits(1, 4096))
    temperature: float = field(default=0.0, metadata=_limits(0.0, 2.0))
    top_p: float = field(default=1.0, metadata=_limits(0.01, 1.0))

    def max_tokens_for(self, mode: str) -> int:
        """The token limit of one decode in `mode` (LINE or BLOCK)."""
        if self.max_tokens is not None:
            return self.max_tokens
        return self.max_tokens_block if mode == "BLOCK" else self.max_tokens_line


@dataclass(frozen=True)
class DebounceOptions:
    """How long to wait before starting the model (see scheduler.Debouncer): 0/0 disables it."""

    min_ms: int = field(default=25, metadata=_limits(0, 5000))
    max_ms: int = field(default=300, metadata=_limits(0, 5000))
    initial_ms: int = field(default=75, metadata=_limits(0, 5000))


@dataclass(frozen=True)
class LanguageOptions:
    """languageIds to complete: `enabled` ("*": all) minus `disabled`."""

    enabled: tuple[str, ...] = ("*",)
    disabled: tuple[str, ...] = ()

    def allows(self, language_id: str) -> bool:
        """Whether documents of `language_id` get completions (case-insensitive)."""
        lid = language_id.lower()
        enabled = {e.lower() for e in self.enabled}
        return ("*" in enabled or lid in enabled) and lid not in {d.lower() for d in self.disabled}


@dataclass(frozen=True)
class ContextBudgets:
    """Token budgets of the prompt and the context stage's cross-file references.

    `carry_line`: put the cursor line's text after the middle token of a prefix-suffix-middle
    prompt, so typing on a line reuses the KV cache of the whole previous prompt (see
    `prompt.Budget.carry_line`); false keeps it at the end of the prefix.
    """

    prefix_tokens: int = field(default=1024, metadata=_limits(16, 32768))
    suffix_tokens: int = field(default=256, metadata=_limits(0, 32768))
    reference_tokens: int = field(default=512, metadata=_limits(0, 32768))
    references: bool = True
    near_lines: int = field(default=30, metadata=_limits(0, 1000))
    carry_line: bool = True


@dataclass(frozen=True)
class CacheOptions:
    """The completion cache: entries kept (0 disables it)."""

    size: int = field(default=128, metadata=_limits(0, 100_000))


@dataclass(frozen=True)
class DocumentOptions:
    """Open documents: one over `max_bytes` (UTF-8) gets no completions and its text is not kept."""

    max_bytes: int = field(default=2_000_000, metadata=_limits(1024, 1 << 30))


@dataclass(frozen=True)
class BackendOptions:
    """Where the model runs. Command line only (`serve` flags): never a client setting.

    `worker` (default): a worker process, `shared` per user and model across servers or `private`
    to this server, exiting after `idle_timeout_s` without requests; `in-process`: the engine in
    the server (debugging); `openai`: a remote OpenAI-compatible server (`openai` holds a
    `remote.openai.OpenAIOptions`).
    """

    kind: str = "worker"  # worker | in-process | openai
    worker_mode: str = "shared"  # shared | private
    idle_timeout_s: float = 600.0
    openai: Any = None


@dataclass(frozen=True)
class ServerOptions:
    model: ModelOptions = ModelOptions()
    completion: DecodingSettings = DecodingSettings()
    debounce: DebounceOptions = DebounceOptions()
    languages: LanguageOptions = LanguageOptions()
    context: ContextBudgets = ContextBudgets()
    cache: CacheOptions = CacheOptions()
    documents: DocumentOptions = DocumentOptions()


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_leaf(value: Any, hint: Any, meta: Mapping[str, Any]) -> tuple[bool, Any, str]:
    """(ok, converted value, expectation) for one leaf value against its type hint and limits."""
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    if value is None:
        return optional, None, "a value"
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if base is bool:
        return isinstance(value, bool), value, "true or false"
    if base in (int, float):
        expected = ("an integer" if base is int else "a number") + (
            f" in [{lo}, {hi}]" if lo is not None or hi is not None else ""
        )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value, expected
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                return False, value, expected
            value = int(value)
        else:
            value = float(value)
        # NaN fails both comparisons, so it is rejected too.
        in_range = (lo is None or value >= lo) and (hi is None or value <= hi)
        return in_range, value, expected
    if base is str:
        ok = isinstance(value, str) and (choices is None or value in choices)
        return ok, value, f"one of {', '.join(choices)}" if choices else "a string"
    if typing.get_origin(base) is tuple:
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        return ok, tuple(value) if ok else value, "a list of strings"
    raise TypeError(f"unsupported option type {hint!r}")  # a bug in the tree above


def _parse_node(cls: type, raw: Any, base: Any, path: str, warnings: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        warnings.append(f"{path or 'settings'}: expected an object, got {_describe(raw)} (ignored)")
        return base
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        name = _snake(str(key))
        where = f"{path}.{key}" if path else str(key)
        if name not in fields:
            warnings.append(f"{where}: unknown setting (ignored)")
            continue
        hint = hints[name]
        current = getattr(base, name)
        if fields[name].metadata.get("cli_only"):
            if value != current:
                warnings.append(f"{where}: can only be set on the command line (using {_describe(current)})")
            continue
        if dataclasses.is_dataclass(hint):
            if hint is ModelOptions and isinstance(value, str):
                value = {"name": value}
            changes[name] = _parse_node(hint, value, current, where, warnings)
            continue
        ok, converted, expected = _check_leaf(value, hint, fields[name].metadata)
        if ok:
            changes[name] = converted
        else:
            warnings.append(
                f"{where}: expected {expected}, got {_describe(value)} (using {_describe(current)})"
            )
    return dataclasses.replace(base, **changes)


def _check_consistency(options: ServerOptions, base: ServerOptions, warnings: list[str]) -> ServerOptions:
    debounce = options.debounce
    if debounce.min_ms > debounce.max_ms:
        warnings.append(
            f"debounce: minMs {debounce.min_ms} is above maxMs {debounce.max_ms} (using "
            f"{base.debounce.min_ms}/{base.debounce.max_ms})"
        )
        options = dataclasses.replace(options, debounce=base.debounce)
    return options


def unwrap_settings(settings: Any) -> Any:
    """The server's part of a `didChangeConfiguration` payload (a `codegeexLsp` section or all)."""
    if isinstance(settings, Mapping):
        for key in (SECTION, "codegeex"):
            if isinstance(settings.get(key), Mapping):
                return settings[key]
    return settings


def parse_options(raw: Any, base: ServerOptions | None = None) -> tuple[ServerOptions, list[str]]:
    """Options from a client payload over `base`; never raises. Returns (options, warnings)."""
    base = base or ServerOptions()
    warnings: list[str] = []
    raw = unwrap_settings(raw)
    if raw is None:
        return base, warnings
    options = _parse_node(ServerOptions, raw, base, "", warnings)
    return _check_consistency(options, base, warnings), warnings


def to_wire(options: ServerOptions) -> dict[str, Any]:
    """The options as a client would send them (camelCase; command-line-only ones left out)."""

    def convert(node: Any) -> Any:
        if dataclasses.is_dataclass(node):
            return {
                _camel(f.name): convert(getattr(node, f.name))
                for f in dataclasses.fields(node)
                if not f.metadata.get("cli_only")
            }
        if isinstance(node, tuple):
            return list(node)
        return node

    return convert(options)
