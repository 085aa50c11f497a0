"""`codegeex-lsp bench sandbox-run --language L FILE`: one program through the benchmark's sandbox.

The file goes through the same recipe, sandbox and limits as a HumanEval-X sample, so that a user
can see what the harness would make of it (and try an attack on the sandbox). What FILE holds, per
language, is where a task's test code would be: a Python or JavaScript script; a C++ file with its
`main()` (renamed and called by the harness's runner); a Java file with `class Main`'s `main`; a Go
test file with its package clause, imports and `Test` functions; Rust code with `#[test]`s and no
`main` (the recipe adds an empty one). It passes only if its tests ran to the end: the harness's
marker, printed after them, is in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from codegeex_lsp.bench.humaneval_x.dataset import LANGUAGES, Task
from codegeex_lsp.bench.humaneval_x.execute import execute
from codegeex_lsp.bench.humaneval_x.sandbox import SandboxResult, require_isolation
from codegeex_lsp.bench.humaneval_x.toolchains import find_toolchain
from codegeex_lsp.errors import CodegeexError, InputError

# Which Task field the file stands in for, so that the recipe wraps it as it wraps a task's tests.
_SLOT = {
    "python": "prompt",
    "js": "prompt",
    "rust": "prompt",
    "cpp": "test",
    "java": "test",
    "go": "test_setup",
}
TAIL_CHARS = 2000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codegeex-lsp bench sandbox-run", description=__doc__)
    parser.add_argument("--language", "-l", required=True, choices=LANGUAGES)
    parser.add_argument("file", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run WITHOUT the bubblewrap sandbox, as your own user",
    )
    return parser


def task_for_file(language: str, source: str, name: str) -> Task:
    """A task whose recipe runs `source` as that language's test code."""
    fields = {"prompt": "", "test": "", "test_setup": "", _SLOT[language]: source}
    return Task(task_id=f"{name}/0", language=language, canonical_solution="", **fields)


def sandbox_run(language: str, path: Path, *, unsafe_no_sandbox: bool = False) -> tuple[SandboxResult, str]:
    """Run the file as the harness would; the result and the sandbox mode it ran under."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    isolation = require_isolation(unsafe_no_sandbox=unsafe_no_sandbox)
    result = execute(task_for_file(language, source, path.name), "", find_toolchain(language), isolation)
    return result, isolation.mode


def main(argv: list[str] | None = None) -> int:
    """0 when the program passed, 1 when it did not, 2 on a usage error or no sandbox."""
    args = build_parser().parse_args(argv)
    try:
        result, mode = sandbox_run(args.language, args.file, unsafe_no_sandbox=args.unsafe_no_sandbox)
    except CodegeexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    summary = {
        **asdict(result),
        "stdout": result.stdout[-TAIL_CHARS:],
        "stderr": result.stderr[-TAIL_CHARS:],
        "sandbox": mode,
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"status: {result.status}")
        print(f"exit code: {result.returncode}")
        print(f"detail: {result.detail or '-'}")
        print(f"sandbox: {mode}")
        print(f"wall: {result.wall_s:.2f} s")
        for stream in ("stdout", "stderr"):
            print(
                f"--- {stream} (tail) ---\n{summary[stream]}",
                end="" if summary[stream].endswith("\n") else "\n",
            )
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
