"""The language registry: ids, aliases, extension fallback, grammars, and the plaintext fallback."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest
import tree_sitter

from codegeex_lsp.context.languages import (
    grammars_dir,
    language_for,
    load_registry,
    parse_registry,
    parser_for,
    ts_language,
)

# languageId -> (prompt name, grammar, line comment)
REQUIRED = {
    "python": ("Python", "tree_sitter_python.language", "#"),
    "javascript": ("JavaScript", "tree_sitter_javascript.language", "//"),
    "javascriptreact": ("JavaScript", "tree_sitter_javascript.language", "//"),
    "typescript": ("TypeScript", "tree_sitter_typescript.language_typescript", "//"),
    "typescriptreact": ("TypeScript", "tree_sitter_typescript.language_tsx", "//"),
    "java": ("Java", "tree_sitter_java.language", "//"),
    "c": ("C", "tree_sitter_c.language", "//"),
    "cpp": ("C++", "tree_sitter_cpp.language", "//"),
    "go": ("Go", "tree_sitter_go.language", "//"),
    "rust": ("Rust", "tree_sitter_rust.language", "//"),
}


@pytest.mark.parametrize("language_id", sorted(REQUIRED))
def test_required_languages(language_id: str) -> None:
    info = language_for(language_id)
    assert (info.name, info.grammar, info.line_comment) == REQUIRED[language_id]
    assert info.language_id == language_id
    assert info.block_comment == ("/*", "*/") or language_id == "python"
    assert info.queries is not None and info.block_style is not None


@pytest.mark.parametrize("language_id", sorted(REQUIRED))
def test_every_grammar_parses(language_id: str) -> None:
    info = language_for(language_id)
    language = ts_language(info)
    assert isinstance(language, tree_sitter.Language)
    parser = parser_for(info)
    assert parser is not None
    tree = parser.parse(b"x")
    assert tree.root_node.end_byte == 1


def test_all_registry_grammars_load() -> None:
    for info in load_registry().languages.values():
        assert info.has_grammar == (ts_language(info) is not None), info.language_id


def test_entries_without_grammar_still_name_the_language() -> None:
    for language_id, name, comment in [("shellscript", "Shell", "#"), ("markdown", "Markdown", None),
                                       ("sql", "SQL", "--"), ("ruby", "Ruby", "#")]:
        info = language_for(language_id)
        assert (info.name, info.line_comment, info.has_grammar) == (name, comment, False)
        assert parser_for(info) is None


@pytest.mark.parametrize(("path", "expected"), [
    ("/src/a.py", "python"), ("/src/A.PY", "python"), ("/src/a.tsx", "typescriptreact"),
    ("/src/a.jsx", "javascriptreact"), ("/src/a.hpp", "cpp"), ("/src/a.h", "c"), ("/x/main.go", "go"),
    ("/x/Makefile", "makefile"), ("/x/lib.rs", "rust"), ("/x/README", "plaintext"),
])
def test_extension_fallback(path: str, expected: str) -> None:
    assert language_for(None, path).language_id == expected
    assert language_for("no-such-language-id", path).language_id == expected


def test_id_wins_over_extension_except_plaintext() -> None:
    assert language_for("javascript", "/a.py").language_id == "javascript"
    assert language_for("plaintext", "/a.py").language_id == "python"
    assert language_for("", "/a.py").language_id == "python"


@pytest.mark.parametrize(("alias", "expected"), [
    ("sh", "shellscript"), ("bash", "shellscript"), ("PYTHON", "python"), ("c++", "cpp"),
    ("tsx", "typescriptreact"), ("golang", "go"),
])
def test_aliases(alias: str, expected: str) -> None:
    assert language_for(alias).language_id == expected


def test_unknown_language_is_plaintext_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="codegeex_lsp.context.languages"):
        info = language_for("totally-unknown-lang-42", "/x/file.unknownext")
    assert info.language_id == "plaintext" and info.name == "Plain Text" and not info.has_grammar
    assert any("totally-unknown-lang-42" in record.getMessage() for record in caplog.records)


def test_registry_file_is_found() -> None:
    assert grammars_dir().joinpath("languages.toml").is_file()
    assert grammars_dir().joinpath("python", "scopes.scm").is_file()


def test_grammars_dir_prefers_the_installed_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "grammars"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "languages.toml").write_text("# installed copy\n")
    spec = importlib.util.spec_from_file_location(
        "codegeex_lsp.grammars", fake / "__init__.py", submodule_search_locations=[str(fake)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "codegeex_lsp.grammars", module)
    assert grammars_dir().joinpath("languages.toml").read_text() == "# installed copy\n"


def test_extensions_are_unique_and_lower_case() -> None:
    registry = load_registry()
    seen: dict[str, str] = {}
    for info in registry.languages.values():
        for ext in info.extensions:
            assert ext == ext.lower() and ext.startswith(".")
            assert ext not in seen, f"{ext} in {seen.get(ext)} and {info.language_id}"
            seen[ext] = info.language_id


@pytest.mark.parametrize(("source", "message"), [
    ('[languages.plaintext]\nname = "T"\nstrings = []\n[languages.a]\nname = "A"\nstrings = []\nextensions = [".x"]\n'
     '[languages.b]\nname = "B"\nstrings = []\nextensions = [".x"]\n', "extension '.x' is used twice"),
    ('[languages.plaintext]\nname = "T"\nstrings = []\n[languages.a]\nname = "A"\nstrings = []\nblock_style = "tabs"\n', "block_style"),
    ('[languages.plaintext]\nname = "T"\nstrings = []\n[languages.a]\nname = "A"\nstrings = []\ncomment = "#"\n', "unknown keys"),
    ('[languages.a]\nname = "A"\nstrings = []\n', "plaintext entry is required"),
    ('[languages.plaintext]\nname = "T"\nstrings = []\naliases = ["t"]\n[languages.t]\nname = "A"\nstrings = []\n', "used twice"),
    ('[languages.plaintext]\nname = "T"\nstrings = []\nline_comment = 3\n', "must be a string"),
    ('[languages.plaintext]\nname = "T"\n', r"\[plaintext\] needs strings"),
    ('[languages.plaintext]\nstrings = []\n', r"\[plaintext\] needs name"),
    ('[languages.plaintext]\nname = "T"\nstrings = []\nchar_literals = "yes"\n', "true or false"),
    ('[languages.plaintext]\nname = "T"\nstrings = []\ncodegeex_tag = "# T"\n', "needs codegeex = true"),
    ('[languages.plaintext]\nname = "T"\nstrings = []\ncodegeex = true\n', "line_comment or a codegeex_tag"),
])
def test_malformed_registry_is_rejected(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_registry(source)
