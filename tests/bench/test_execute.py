"""Each language's recipe: canonical solutions pass, wrong completions fail, offline deps resolve.

Tests skip only where a language's compilers are absent; `scripts/install-toolchains` installs them.
"""

from __future__ import annotations

import functools

import pytest

from codegeex_lsp.bench.humaneval_x.dataset import LANGUAGES, Task, load_tasks
from codegeex_lsp.bench.humaneval_x.execute import build_program, execute, go_imports
from codegeex_lsp.bench.humaneval_x.toolchains import Toolchain, find_toolchain, installed

# Task 0 (has_close_elements -> bool) and 13 (greatest_common_divisor -> int): wrong but compiling.
WRONG: dict[str, dict[int, str]] = {
    "python": {0: "    return False\n", 13: "    return 1\n"},
    "cpp": {0: "    return false;\n}\n", 13: "    return 1;\n}\n"},
    "java": {0: "        return false;\n    }\n}\n", 13: "        return 1;\n    }\n}\n"},
    "js": {0: "  return false;\n}\n", 13: "  return 1;\n}\n"},
    "go": {0: "    return false\n}\n", 13: "    return 1\n}\n"},
    "rust": {0: "    return false;\n}\n", 13: "    return 1;\n}\n"},
}


def _needs(language: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not installed(language), reason=f"{language} toolchain not installed")


def _params() -> list[object]:
    return [
        pytest.param(language, number, marks=_needs(language)) for language in LANGUAGES for number in (0, 13)
    ]


@functools.cache
def _task(language: str, number: int) -> Task:
    return load_tasks(language)[number]


def _toolchain(language: str) -> Toolchain:
    toolchain = find_toolchain(language)
    assert toolchain.available, toolchain.reason
    return toolchain


@pytest.mark.parametrize(("language", "number"), _params())
def test_canonical_passes(language: str, number: int) -> None:
    task = _task(language, number)
    result = execute(task, task.canonical_solution, _toolchain(language))
    assert result.status == "passed", (result.detail, result.stdout, result.stderr)


@pytest.mark.parametrize(("language", "number"), _params())
def test_wrong_completion_fails(language: str, number: int) -> None:
    task = _task(language, number)
    result = execute(task, WRONG[language][number], _toolchain(language))
    assert result.status == "failed", (result.detail, result.stdout, result.stderr)
    # It compiled: the tests themselves caught it.
    assert not result.detail.startswith("compile"), result.stderr


@pytest.mark.parametrize("language", [pytest.param(lang, marks=_needs(lang)) for lang in ("cpp", "rust")])
def test_compile_error_fails(language: str) -> None:
    result = execute(_task(language, 0), "    return undefined_name;\n}\n", _toolchain(language))
    assert result.status == "failed"
    assert result.detail.startswith("compile")


@_needs("js")
def test_js_any_output_is_failure() -> None:
    task = _task("js", 0)
    chatty = task.canonical_solution.replace("return false;", 'console.log("debug"); return false;', 1)
    assert chatty != task.canonical_solution
    result = execute(task, chatty, _toolchain("js"))
    assert result.status == "failed"
    assert "output" in result.detail


@_needs("js")
def test_js_md5_resolves_from_the_project_prefix() -> None:
    task = _task("js", 162)
    result = execute(task, task.canonical_solution, _toolchain("js"))
    assert result.status == "passed", (result.detail, result.stderr)


@_needs("rust")
def test_rust_crates_are_served_offline() -> None:
    task = _task("rust", 0)
    uses_all = (
        '    let _ = Regex::new("a+b").unwrap().is_match("aab");\n'
        '    let _ = format!("{:x}", md5::compute(b"x"));\n'
        "    let _: i32 = rand::thread_rng().gen_range(0..10);\n"
    )
    result = execute(task, uses_all + task.canonical_solution, _toolchain("rust"))
    assert result.status == "passed", (result.detail, result.stderr)


@_needs("go")
def test_go_testify_is_found_offline_and_used_packages_are_imported() -> None:
    task = _task("go", 13)
    uses_strings = '    _ = strings.ToUpper("x")\n' + task.canonical_solution
    result = execute(task, uses_strings, _toolchain("go"))
    assert result.status == "passed", (result.detail, result.stdout)


def test_go_imports_only_what_the_code_uses() -> None:
    task = _task("go", 0)  # its prompt imports "math"
    assert go_imports(task, "return false") == ()
    assert go_imports(task, "return math.Abs(x) < 1") == ("math",)
    assert go_imports(task, '// strings.Split\ns := "fmt.Println"') == ()
    assert go_imports(task, "n := rand.Intn(3); _ = strconv.Itoa(n)") == ("strconv", "math/rand")


def test_program_assembly_follows_the_recipe() -> None:
    toolchain = Toolchain("cpp", available=True)
    cpp = build_program(_task("cpp", 162), "}", toolchain)
    assert cpp.steps[0].argv[-2:] == ("-lcrypto", "-lssl")
    assert cpp.files["main.cpp"].startswith("#include<stdlib.h>")
    go = build_program(_task("go", 0), "}", Toolchain("go", available=True))
    source = go.files["main_test.go"]
    assert source.startswith("package main")
    assert _task("go", 0).import_block not in source
    rust = build_program(_task("rust", 0), "}", Toolchain("rust", available=True))
    assert rust.files["main.rs"].startswith("fn main(){}\n")
