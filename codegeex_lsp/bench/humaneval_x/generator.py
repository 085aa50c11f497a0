"""What the benchmark needs from a model: the `Generator` protocol, and the canonical stand-in.

The engine-backed generator lives in `codegeex_lsp.bench.humaneval_x.generate` (owned by the engine
work) and is imported only when a model run asks for it, so that this package never imports torch:

    def make_generator(model: str | None, quant: str, protocol: str) -> tuple[Generator, GeneratorInfo]: ...

`CanonicalGenerator` answers every prompt with the dataset's own solution: with it every task must
pass except the known-bad ones, which is how the harness checks itself without a model.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from codegeex_lsp.bench.humaneval_x.dataset import Task
from codegeex_lsp.errors import ModelError

MODEL_GENERATOR_MODULE = "codegeex_lsp.bench.humaneval_x.generate"


@runtime_checkable
class Generator(Protocol):
    """Continues a HumanEval-X prompt; `n` raw samples, cut by `stops` afterwards, not here."""

    def generate(
        self, prompt: str, language: str, *, n: int, temperature: float, max_tokens: int
    ) -> list[str]:
        """`n` completions of `prompt` (benchmark language name: python, cpp, java, js, go, rust)."""
        ...


@dataclass(frozen=True)
class GeneratorInfo:
    """What the report records about a generator.

    `complete_programs`: the completions are whole solutions that must not be truncated at the
    function's end (canonical solutions sometimes define helpers after the function).
    """

    name: str
    model_hash: str
    quant: str = "none"
    complete_programs: bool = False


class CanonicalGenerator:
    """Returns each task's canonical solution, `n` times, ignoring the sampling settings."""

    info = GeneratorInfo(name="canonical", model_hash="canonical", quant="none", complete_programs=True)

    def __init__(self, tasks: Iterable[Task]) -> None:
        self._solutions = {(task.language, task.prompt): task.canonical_solution for task in tasks}

    def generate(
        self, prompt: str, language: str, *, n: int, temperature: float, max_tokens: int
    ) -> list[str]:
        try:
            return [self._solutions[(language, prompt)]] * n
        except KeyError:
            raise KeyError(f"no canonical solution for this {language} prompt") from None


def load_model_generator(
    model: str | None, quant: str, protocol: str = "codegeex"
) -> tuple[Generator, GeneratorInfo]:
    """Import the engine-backed generator lazily (it brings torch) and build it."""
    try:
        module = importlib.import_module(MODEL_GENERATOR_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != MODEL_GENERATOR_MODULE:
            raise
        raise ModelError(
            f"model generation is not available yet ({MODEL_GENERATOR_MODULE}.make_generator); "
            "use --canonical to check the harness"
        ) from None
    return module.make_generator(model, quant, protocol)
