"""Language facts live only in grammars/languages.toml: every entry is complete, and the scanner,
the prompt builder and the benchmarks change when (and only when) the toml does."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator

import pytest

from codegeex_lsp.bench.humaneval_x.dataset import LANGUAGES, display_name, language_info
from codegeex_lsp.bench.infill import report as infill_report
from codegeex_lsp.bench.infill.tasks import file_name
from codegeex_lsp.context import languages
from codegeex_lsp.context.languages import REQUIRED_KEYS, grammars_dir, load_registry, parse_registry
from codegeex_lsp.postprocess import _lexer
from codegeex_lsp.postprocess._lexer import imbalance
from codegeex_lsp.prompt.languages import codegeex_language
from tests.bench.test_infill_report import _results
from tests.postprocess.cases import apply as run_filter
from tests.postprocess.cases import make

SHIPPED = grammars_dir().joinpath("languages.toml").read_text(encoding="utf-8")


@pytest.fixture
def edited_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Swap in the shipped toml with one piece of text replaced; nothing else changes."""

    def edit(old: str, new: str) -> None:
        assert SHIPPED.count(old) == 1, f"{old!r} must occur once in languages.toml"
        registry = parse_registry(SHIPPED.replace(old, new))
        monkeypatch.setattr(languages, "load_registry", lambda: registry)
        _lexer._lexical.cache_clear()
        _lexer.state_after.cache_clear()

    yield edit
    _lexer._lexical.cache_clear()
    _lexer.state_after.cache_clear()


def test_every_language_states_the_required_fields() -> None:
    table = tomllib.loads(SHIPPED)["languages"]
    for language_id, entry in table.items():
        missing = [key for key in REQUIRED_KEYS if key not in entry]
        assert not missing, f"[languages.{language_id}] lacks {missing}"
    registry = load_registry()
    assert set(registry.languages) == set(table)
    for info in registry.languages.values():
        assert info.name
        if info.codegeex:  # the prompt can always name it
            assert codegeex_language(info.language_id) is not None


def test_every_benchmark_language_is_registered_with_a_file_extension() -> None:
    for language in LANGUAGES:
        info = language_info(language)
        assert info.has_grammar and info.extensions
    assert language_info("js").language_id == "javascript"
    with pytest.raises(ValueError, match=r"not in grammars/languages\.toml"):
        language_info("cobol")


def test_the_scanner_takes_comments_from_the_toml(edited_registry: Callable[[str, str], None]) -> None:
    assert imbalance("f(1  # )", "python") == 1  # the `)` is commented out
    edited_registry(
        'block_style = "indent"\nline_comment = "#"\n', 'block_style = "indent"\nline_comment = ";"\n'
    )
    assert imbalance("f(1  # )", "python") == 0
    assert imbalance("f(1  ; )", "python") == 1


def test_the_scanner_takes_strings_from_the_toml(edited_registry: Callable[[str, str], None]) -> None:
    assert imbalance('f("(")', "rust") == 0
    edited_registry("""strings = ['"']\nchar_literals = true\nextensions = [".rs"]""",
                    """strings = []\nchar_literals = true\nextensions = [".rs"]""")
    assert imbalance('f("(")', "rust") == 1


def test_the_prompt_takes_name_and_comment_from_the_toml(edited_registry: Callable[[str, str], None]) -> None:
    language = codegeex_language("python")
    assert language is not None and (language.name, language.tag) == ("Python", "# language: Python")
    edited_registry(
        'block_style = "indent"\nline_comment = "#"\n', 'block_style = "indent"\nline_comment = ";"\n'
    )
    language = codegeex_language("python")
    assert language is not None and (language.name, language.tag) == ("Python", "; language: Python")
    edited_registry('name = "Python"\n', 'name = "Snake"\n')  # each edit starts from the shipped text
    language = codegeex_language("py")
    assert language is not None and (language.name, language.tag) == ("Snake", "# language: Snake")


def test_the_prompt_knows_only_what_the_toml_marks_codegeex(edited_registry: Callable[[str, str], None]) -> None:
    assert codegeex_language("toml") is None
    edited_registry('name = "TOML"\n', 'name = "TOML"\ncodegeex = true\n')
    language = codegeex_language("toml")
    assert language is not None and language.tag == "# language: TOML"


def test_the_bench_takes_names_and_files_from_the_toml(edited_registry: Callable[[str, str], None]) -> None:
    ids = [f"Python/{i}/single/L1" for i in range(2)]
    assert "| Python | single | 2 |" in infill_report.render_markdown({"fp": _results("fp", dict.fromkeys(ids, True))})
    assert (display_name("js"), file_name("python"), file_name("java")) == ("JavaScript", "main.py", "Main.java")
    edited_registry('extensions = [".py", ".pyi", ".pyw"]', 'extensions = [".pyw", ".py", ".pyi"]')
    assert file_name("python") == "main.pyw"
    edited_registry('name = "Python"\n', 'name = "Snake"\n')
    assert display_name("python") == "Snake"
    assert "| Snake | single | 2 |" in infill_report.render_markdown({"fp": _results("fp", dict.fromkeys(ids, True))})


def test_the_chat_filter_takes_prose_and_fences_from_the_toml(
    edited_registry: Callable[[str, str], None],
) -> None:
    sentence = "x = 1\n\nThe value is set once and never changes again."
    fenced = "print(1)\n```\n"
    assert run_filter("cut_chat_runoff", make("█\n", sentence, "BLOCK", "python")) == "x = 1\n"
    assert run_filter("cut_chat_runoff", make("█\n", fenced, "BLOCK", "python")) == "print(1)\n"
    edited_registry('codegeex = true\nprose = "never"\n\n[languages.javascript]',
                    'codegeex = true\ncode_fences = true\n\n[languages.javascript]')
    assert run_filter("cut_chat_runoff", make("█\n", sentence, "BLOCK", "python")) == sentence
    assert run_filter("cut_chat_runoff", make("█\n", fenced, "BLOCK", "python")) == fenced
