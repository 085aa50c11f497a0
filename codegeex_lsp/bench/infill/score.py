"""Scoring one infill: run the task's hidden tests on the document with the middle put back.

The program is the holed document with the infill applied; it takes the place of HumanEval-X's
`prompt + completion` in the dataset's per-language recipe (`humaneval_x.execute`), so the Go
import fix-up, C++ includes, Java `-ea` and the sandbox limits are exactly those of the completion
benchmark. Exact match compares the whole program with the original document after collapsing
every run of whitespace to one space (so indentation and trailing newlines do not count, a
different token does).

HumanEval-Infilling tasks carry their own tail (`InfillTask.check`): their program is exactly the
benchmark's, `prompt + middle + suffix + "\n" + test + "\n" + check(entry_point)`, run through
the HumanEval-X Python recipe (same sandbox, interpreter and limits) in a namespace of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib

from codegeex_lsp.bench.humaneval_x.execute import execute
from codegeex_lsp.bench.humaneval_x.sandbox import SandboxResult
from codegeex_lsp.bench.humaneval_x.toolchains import Toolchain
from codegeex_lsp.bench.infill.tasks import InfillTask


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def exact_match(task: InfillTask, program: str) -> bool:
    """Whether `program` equals the task's document up to whitespace."""
    return normalize_whitespace(program) == normalize_whitespace(task.document)


def program_sha(program: str) -> str:
    return hashlib.sha256(program.encode()).hexdigest()[:16]


def run_tests(task: InfillTask, program: str, toolchain: Toolchain) -> SandboxResult:
    """Execute the task's tests against `program` (the whole document, prompt included)."""
    if task.check:
        return run_benchmark_program(task, benchmark_program(task, program), toolchain)
    return execute(dataclasses.replace(task.source, prompt=program), "", toolchain)


def benchmark_program(task: InfillTask, program: str) -> str:
    """HumanEval-Infilling's own program: the filled document, then the test and the check call."""
    return program + task.check


def run_benchmark_program(task: InfillTask, source: str, toolchain: Toolchain) -> SandboxResult:
    """Run one HumanEval-Infilling program through the HumanEval-X Python recipe (its sandbox, its
    interpreter), executed in a fresh module namespace so that nothing the recipe puts above it (its
    import preamble) is visible to the program: the benchmark's program exactly, exit 0 passes."""
    bootstrap = f"exec(compile({source!r}, 'main.py', 'exec'), {{'__name__': '__main__'}})"
    return execute(dataclasses.replace(task.source, prompt="", test=""), bootstrap, toolchain)
