"""Cutting a completion at the end of the prompt's function, per language."""

from __future__ import annotations

import pytest

from codegeex_lsp.bench.humaneval_x.dataset import LANGUAGES, load_tasks
from codegeex_lsp.bench.humaneval_x.stops import truncate_completion

# Canonical solutions that legitimately go on after the prompt's function: helpers defined after
# it, or (Rust/10, Rust/32) a prompt that ends inside a helper with the target function after.
CANONICAL_CONTINUES = {"CPP/94", "Go/72", "Rust/10", "Rust/32", "Rust/38", "Rust/50", "Rust/137", "Rust/145"}


def test_python_cuts_at_the_first_top_level_statement() -> None:
    body = "    return x + 1\n"
    for tail in (
        "\ndef g():\n    pass\n",
        "\nclass A:\n    pass\n",
        '\nif __name__ == "__main__":\n',
        "\nprint(f(1))\n",
    ):
        assert truncate_completion("python", "def f(x):\n", body + tail) == body
    assert truncate_completion("python", "def f(x):\n", body) == body


@pytest.mark.parametrize(
    ("language", "prompt", "completion", "expected"),
    [
        ("cpp", "int f(){\n", "  return 1;\n}\nint main(){}\n", "  return 1;\n}\n"),
        (
            "cpp",
            "int f(){\n",
            "  if (1) { puts(\"}\"); }\n  return '}';\n}\nX",
            "  if (1) { puts(\"}\"); }\n  return '}';\n}\n",
        ),
        ("cpp", "int f(){\n", "  // }\n  /* } */ return 1;\n}\nmore", "  // }\n  /* } */ return 1;\n}\n"),
        ("js", "const f = (a) => {\n", "  return `${a}}`;\n}\nf(1)\n", "  return `${a}}`;\n}\n"),
        ("js", "const f = (a) => {\n", "  return `x${ {a: 1}.a }`;\n}\n", "  return `x${ {a: 1}.a }`;\n}\n"),
        ("go", "func F() string {\n", '    return `}` + "}"\n}\nfunc G() {}\n', '    return `}` + "}"\n}\n'),
        (
            "rust",
            "fn f<'a>(s: &'a str) -> &'a str {\n",
            "    let _c = '}'; let _r = r#\"}\"#;\n    s\n}\nfn g() {}\n",
            "    let _c = '}'; let _r = r#\"}\"#;\n    s\n}\n",
        ),
        (
            "rust",
            "fn f(s: &str) -> String {\n",
            "    s.to_string()\n}\n\n#[test]\n",
            "    s.to_string()\n}\n",
        ),
    ],
)
def test_brace_languages_cut_where_the_body_closes(
    language: str, prompt: str, completion: str, expected: str
) -> None:
    assert truncate_completion(language, prompt, completion) == expected


def test_java_closes_the_class_after_cutting_the_method() -> None:
    prompt = "class Solution {\n    public int f() {\n"
    completion = "        return 1;\n    }\n    public static void main(String[] a) {}\n}\n"
    assert truncate_completion("java", prompt, completion) == "        return 1;\n    }\n}\n"


def test_unbalanced_completion_is_kept_whole() -> None:
    assert truncate_completion("cpp", "int f(){\n", "  while (1) {\n    g();") == "  while (1) {\n    g();"


@pytest.mark.parametrize("language", LANGUAGES)
def test_canonical_solutions_survive_truncation(language: str) -> None:
    """On 984 real solutions, cutting at the function's end keeps everything that matters."""
    for task in load_tasks(language):
        if task.task_id in CANONICAL_CONTINUES:
            continue
        cut = truncate_completion(language, task.prompt, task.canonical_solution)
        assert cut.strip() == task.canonical_solution.strip(), task.task_id
