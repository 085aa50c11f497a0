"""HumanEval-X tasks: loading the six `humanevalx_<lang>.jsonl.gz` files into frozen `Task`s.

Also owns the facts about the data that the rest of the benchmark must not guess: the language
file stems (their LSP ids and names come from the language registry), and the tasks known to be bad
in the dataset itself (reported, never hidden).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from codegeex_lsp.context.languages import LanguageInfo, registered


def package_data(name: str) -> Path:
    """A data set shipped inside the package (`codegeex_lsp/bench/data/<name>`, with its LICENSE)."""
    return Path(str(files("codegeex_lsp.bench").joinpath("data", name)))


DEFAULT_DATA_DIR = package_data("humanevalx")
"""The copy shipped in the package (Apache-2.0, see its LICENSE); `--data` or `CODEGEEX_HUMANEVALX` override."""

LANGUAGES: tuple[str, ...] = ("python", "cpp", "java", "js", "go", "rust")
"""Benchmark language names, in the order of the published tables; also the file stems."""



def language_info(language: str) -> LanguageInfo:
    """The registry entry of a benchmark language (its file stem; "js" is javascript's alias)."""
    info = registered(language)
    if info is None:
        raise ValueError(f"benchmark language {language!r} is not in grammars/languages.toml")
    return info


def display_name(language: str) -> str:
    """How reports name a benchmark language ("js" -> "JavaScript"); an unknown one as it is."""
    info = registered(language)
    return info.name if info is not None else language


KNOWN_BAD: dict[tuple[str, int], str] = {
    ("go", 95): "flaky: the test depends on Go map iteration order (canonical fails ~24% of runs)",
    ("rust", 50): "canonical uses rand<=0.7 gen_range(a, b); does not compile against rand 0.8",
    ("rust", 32): "tests are commented out: passes vacuously",
}
"""Dataset defects measured in the dataset's README, keyed by (language, task number)."""


@dataclass(frozen=True)
class Task:
    """One problem in one language, as the dataset ships it.

    `import_block` and `test_setup` are Go-only fields (empty elsewhere): Go's prompt carries an
    `import (...)` block that must be moved above the function, after the test's package clause.
    """

    task_id: str
    language: str
    prompt: str
    canonical_solution: str
    test: str
    declaration: str = ""
    example_test: str = ""
    import_block: str = ""
    test_setup: str = ""

    @property
    def number(self) -> int:
        """The task's index (the same problem has the same number in every language)."""
        return int(self.task_id.rsplit("/", 1)[1])

    @property
    def known_bad(self) -> str | None:
        """Why this task cannot be trusted, or None."""
        return KNOWN_BAD.get((self.language, self.number))


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The dataset directory: the argument, else $CODEGEEX_HUMANEVALX, else the package's copy."""
    if override:
        return Path(override)
    env = os.environ.get("CODEGEEX_HUMANEVALX")
    return Path(env) if env else DEFAULT_DATA_DIR


def load_tasks(language: str, directory: str | os.PathLike[str] | None = None) -> list[Task]:
    """All tasks of one language, in task-number order."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown HumanEval-X language {language!r}; expected one of {', '.join(LANGUAGES)}")
    path = data_dir(directory) / f"humanevalx_{language}.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        tasks = [_task_from_row(language, json.loads(line)) for line in lines if line.strip()]
    return sorted(tasks, key=lambda task: task.number)


def draw_order(tasks: Sequence[Task], seed: int) -> list[Task]:
    """`tasks` in a seeded order that depends on each task's number only (the same draw in every
    language, whichever tasks are present): a sample is a prefix of it, never the first N problems."""
    return sorted(tasks, key=lambda task: hashlib.sha256(f"{seed}:draw:{task.number}".encode()).digest())


def sample_tasks(tasks: Sequence[Task], size: int, seed: int) -> list[Task]:
    """`size` tasks drawn with `seed`, returned in task-number order."""
    return sorted(draw_order(tasks, seed)[:size], key=lambda task: task.number)


def _task_from_row(language: str, row: dict[str, str]) -> Task:
    return Task(
        task_id=row["task_id"],
        language=language,
        prompt=row["prompt"],
        canonical_solution=row["canonical_solution"],
        test=row["test"],
        declaration=row.get("declaration", ""),
        example_test=row.get("example_test", ""),
        import_block=row.get("import", ""),
        test_setup=row.get("test_setup", ""),
    )
