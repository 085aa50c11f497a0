"""Turn (task, completion) into a program and run its tests in the sandbox, per the dataset's recipe.

`build_program` is pure (source text, steps, limits) so the assembly is testable without compilers;
`execute` runs the steps in one sandbox and stops at the first that does not pass. The per-language
recipe follows the dataset README shipped in codegeex_lsp/bench/data/humanevalx/; where it leaves a choice open the choice
is CodeGeeX's own harness (the published numbers come from it): its Python preamble and C++ include
list, Java run with `-ea` (Java/151 tests with `assert`), Go imports added for the packages the code
uses.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from codegeex_lsp.bench.humaneval_x.dataset import Task
from codegeex_lsp.bench.humaneval_x.sandbox import GiB, Isolation, Limits, MiB, Sandbox, SandboxResult
from codegeex_lsp.bench.humaneval_x.toolchains import Toolchain

PYTHON_PREAMBLE = """\
import math
import re
import secrets
import sys
import copy
import datetime
import itertools
import collections
import heapq
import statistics
import functools
import hashlib
import numpy
import numpy as np
import string
from typing import *
from collections import *
"""

CPP_HEADERS: tuple[str, ...] = (
    "#include<stdlib.h>",
    "#include<algorithm>",
    "#include<math.h>",
    "#include<stdio.h>",
    "#include<vector>",
    "#include<string>",
    "#include<climits>",
    "#include<cstring>",
    "#include<iostream>",
)
"""Added above the prompt when it lacks them (the prompts include only what the canonical uses)."""

GO_PACKAGES: tuple[str, ...] = (
    "math",
    "strings",
    "fmt",
    "strconv",
    "time",
    "bytes",
    "regexp",
    "sort",
    "math/rand",
    "crypto/md5",
)
"""Packages imported when the code uses them, besides those of the task's own import block."""

# The JVM reserves about 1 GiB of address space for compressed class pointers and sizes its heap
# from physical RAM; these flags make it fit RLIMIT_AS, and C1-only JIT starts faster.
JVM_FLAGS: tuple[str, ...] = (
    "-Xmx512m",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:CompressedClassSpaceSize=64m",
    "-XX:MaxMetaspaceSize=256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
)

COMPILE_LIMITS = Limits(
    wall_s=120.0, cpu_s=60.0, memory_bytes=4 * GiB, fsize_bytes=256 * MiB, tmpfs_bytes=512 * MiB
)
RUN_LIMITS = Limits(wall_s=20.0, cpu_s=10.0, memory_bytes=2 * GiB)

_THREAD_CAPS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Step:
    """One command in the sandbox; `name` prefixes the detail of a step that does not pass."""

    name: str
    argv: tuple[str, ...]
    limits: Limits
    writable: bool = False


@dataclass(frozen=True)
class Program:
    """Files to write, steps to run, and how to judge the last step's output.

    The last step passes only if `pass_pattern` (a regex) is found in its stdout or stderr; with
    `output_is_failure` that marker line must also be the only output.
    """

    files: dict[str, str]
    steps: tuple[Step, ...]
    env: dict[str, str] = field(default_factory=dict)
    pass_pattern: str = ""
    output_is_failure: bool = False


def execute(
    task: Task, completion: str, toolchain: Toolchain, isolation: Isolation | None = None
) -> SandboxResult:
    """Run the task's tests against `prompt + completion`; the result of the deciding step.

    Never raises for the program's faults or a failed cleanup (recorded as status "error");
    `isolation` defaults to `sandbox.require_isolation()`, which refuses when bwrap cannot run.
    """
    if not toolchain.available:
        return SandboxResult("error", None, "", "", 0.0, f"toolchain unavailable: {toolchain.reason}")
    program = build_program(task, completion, toolchain)
    wall_s = 0.0
    with Sandbox(program.files, program.env, isolation=isolation, mounts=toolchain.mounts) as box:
        for step in program.steps:
            result = box.run(step.argv, step.limits, writable=step.writable)
            wall_s += result.wall_s
            if not result.passed:
                result = replace(result, detail=f"{step.name}: {result.detail}")
                break
        else:
            result = _judge(program, step, result)
    result = replace(result, wall_s=wall_s)
    if box.cleanup_error:
        return replace(result, status="error", detail=f"{result.detail}; cleanup failed: {box.cleanup_error}")
    return result


def _judge(program: Program, step: Step, result: SandboxResult) -> SandboxResult:
    """The last step exited 0: did the test code run to its end?"""
    output = f"{result.stdout}\n{result.stderr}"
    if not re.search(program.pass_pattern, output):
        return replace(result, status="failed", detail=f"{step.name}: exited 0 before the tests finished")
    if program.output_is_failure and (
        result.stderr or re.sub(program.pass_pattern, "", result.stdout).strip()
    ):
        return replace(result, status="failed", detail=f"{step.name}: output on stdout/stderr")
    return result


def build_program(task: Task, completion: str, toolchain: Toolchain, marker: str | None = None) -> Program:
    """The files and steps that test `completion` for `task` in its language.

    `marker` (random when None) is what the program prints once its tests have run.
    """
    builder = _BUILDERS.get(task.language)
    if builder is None:
        raise ValueError(f"no execution recipe for language {task.language!r}")
    return builder(task, completion, toolchain, marker or f"HX-TESTS-DONE-{secrets.token_hex(8)}")


def _python(task: Task, completion: str, toolchain: Toolchain, marker: str) -> Program:
    done = f'__import__("sys").stdout.write("{marker}\\n")'
    source = f"{PYTHON_PREAMBLE}\n{task.prompt}{completion}\n\n{task.test}\n{done}\n"
    env = {"PYTHONDONTWRITEBYTECODE": "1", **_THREAD_CAPS, **toolchain.env}
    # This interpreter (the venv's): numpy lives there, not necessarily in the system python.
    step = Step("run", (sys.executable, "main.py"), RUN_LIMITS)
    return Program({"main.py": source}, (step,), env, pass_pattern=re.escape(marker))


def _js(task: Task, completion: str, toolchain: Toolchain, marker: str) -> Program:
    # console.assert prints and exits 0 on a failed assertion: any other output is a failure.
    source = f"{task.prompt}{completion}\n{task.test}\nconsole.log({marker!r});\n"
    step = Step("run", ("node", "main.js"), RUN_LIMITS)
    return Program(
        {"main.js": source},
        (step,),
        dict(toolchain.env),
        pass_pattern=re.escape(marker) + "\n?",
        output_is_failure=True,
    )


def _cpp(task: Task, completion: str, toolchain: Toolchain, marker: str) -> Program:
    headers = "".join(f"{header}\n" for header in CPP_HEADERS if header not in task.prompt)
    # The test's main() becomes a function that a new main() calls, then prints the marker. Only
    # main() returns 0 when it falls off its end, so the renamed one gets an explicit return.
    test = task.test.rstrip()
    test = f"{test[:-1]}return 0;\n}}" if test.endswith("}") else test
    tests = f"#define main hx_tests\n{test}\n#undef main\n"
    runner = (
        "int main() {\n    int hx_status = hx_tests();\n"
        f'    if (hx_status == 0) puts("{marker}");\n    return hx_status;\n}}\n'
    )
    source = f"{headers}{task.prompt}{completion}\n{tests}{runner}"
    libraries = ("-lcrypto", "-lssl") if "openssl/" in source else ()
    compile_step = Step(
        "compile",
        ("g++", "-std=c++17", "main.cpp", "-o", "main.out", *libraries),
        COMPILE_LIMITS,
        writable=True,
    )
    return Program(
        {"main.cpp": source},
        (compile_step, Step("run", ("./main.out",), RUN_LIMITS)),
        dict(toolchain.env),
        pass_pattern=re.escape(marker),
    )


def _java(task: Task, completion: str, toolchain: Toolchain, marker: str) -> Program:
    runner = (
        "class HxRunner {\n    public static void main(String[] args) throws Throwable {\n"
        f'        Main.main(args);\n        System.out.println("{marker}");\n    }}\n}}\n'
    )
    source = f"{task.prompt}{completion}\n{task.test}\n{runner}"
    javac = ("javac", *(f"-J{flag}" for flag in JVM_FLAGS), "Main.java")
    java = ("java", *JVM_FLAGS, "-ea", "-cp", ".", "HxRunner")
    steps = (Step("compile", javac, COMPILE_LIMITS, writable=True), Step("run", java, RUN_LIMITS))
    return Program({"Main.java": source}, steps, dict(toolchain.env), pass_pattern=re.escape(marker))


def _go(task: Task, completion: str, toolchain: Toolchain, marker: str) -> Program:
    prompt = task.prompt.replace(task.import_block, "") if task.import_block else task.prompt
    imports = go_imports(task, prompt + completion + task.test)
    import_block = (
        "import (\n" + "".join(f'    "{package}"\n' for package in imports) + ")\n" if imports else ""
    )
    # A returning TestMain makes the test binary exit with m.Run()'s code (Go >= 1.15).
    runner = (
        f'func TestMain(m *testing.M) {{\n    if m.Run() == 0 {{\n        println("{marker}")\n    }}\n}}\n'
    )
    source = f"{task.test_setup}\n{import_block}\n{prompt}{completion}\n\n{task.test}\n{runner}"
    build = Step(
        "compile", ("go", "test", "-c", "-o", "main.test", "main_test.go"), COMPILE_LIMITS, writable=True
    )
    # -test.count=1 is the default for a binary: no cached results (Go/95 is flaky).
    run = Step("test", ("./main.test",), RUN_LIMITS)
    return Program(
        {"main_test.go": source}, (build, run), dict(toolchain.env), pass_pattern=re.escape(marker)
    )


def _rust(task: Task, completion: str, toolchain: Toolchain, marker: str) -> Program:
    # The prompt already holds the `use` lines and the declaration; tests live in `mod tests`.
    source = f"fn main(){{}}\n{task.prompt}{completion}\n{task.test}\n"
    rustc = (
        "rustc",
        "--edition=2021",
        "--test",
        "-C",
        "opt-level=0",
        "-C",
        "debuginfo=0",
        "-A",
        "warnings",
        *toolchain.compile_args,
        "main.rs",
        "-o",
        "main_test",
    )
    steps = (
        Step("compile", rustc, COMPILE_LIMITS, writable=True),
        Step("test", ("./main_test", "--test-threads=1"), RUN_LIMITS),
    )
    # libtest's summary is the marker: printed only after every test ran (`marker` is unused).
    return Program(
        {"main.rs": source}, steps, dict(toolchain.env), pass_pattern=r"test result: ok\. [1-9]\d* passed"
    )


_STRINGS_AND_COMMENTS = re.compile(r'"(?:\\.|[^"\\\n])*"|`[^`]*`|//[^\n]*|/\*.*?\*/', re.DOTALL)


def go_imports(task: Task, code: str) -> tuple[str, ...]:
    """Packages `code` refers to (`name.` outside strings and comments) that test_setup lacks.

    Go rejects unused imports, so importing the task's whole list (or CodeGeeX's) would break
    correct completions that solve the task another way.
    """
    declared = re.findall(r'"([\w./]+)"', task.import_block)
    candidates = dict.fromkeys([*declared, *GO_PACKAGES])
    bare = _STRINGS_AND_COMMENTS.sub(" ", code)
    setup = set(re.findall(r'"([\w./]+)"', task.test_setup))
    return tuple(
        package
        for package in candidates
        if package not in setup and re.search(rf"(?<![\w.]){re.escape(package.rsplit('/', 1)[-1])}\.", bare)
    )


_BUILDERS: Mapping[str, Callable[[Task, str, Toolchain, str], Program]] = {
    "python": _python,
    "js": _js,
    "cpp": _cpp,
    "java": _java,
    "go": _go,
    "rust": _rust,
}
