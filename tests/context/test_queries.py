"""Every shipped query compiles against its grammar and finds the expected names in samples."""

from __future__ import annotations

import tomllib

import pytest
import tree_sitter

from codegeex_lsp.context.languages import (
    LanguageInfo,
    grammars_dir,
    language_for,
    load_registry,
    ts_language,
)
from codegeex_lsp.context.queries import QUERY_KINDS, query_for, query_source, run_matches
from codegeex_lsp.context.snippets import find_definitions

from .helpers import HERE, make_doc

GRAMMAR_LANGUAGES = sorted(i.language_id for i in load_registry().languages.values() if i.has_grammar)
SAMPLES = tomllib.loads((HERE / "query_cases.toml").read_text(encoding="utf-8"))["sample"]
CAPTURES = {
    "scopes": {"scope.function", "scope.class", "name", "block", "comment", "string"},
    "functions": {"definition.function", "name"},
    "classes": {"definition.class", "name"},
    "imports": {"import"},
}


def _info(language_id: str) -> LanguageInfo:
    return load_registry().languages[language_id]


@pytest.mark.parametrize("kind", QUERY_KINDS)
@pytest.mark.parametrize("language_id", GRAMMAR_LANGUAGES)
def test_query_compiles(language_id: str, kind: str) -> None:
    info = _info(language_id)
    source = query_source(info, kind)  # type: ignore[arg-type]
    assert source is not None, f"grammars/{info.queries}/{kind}.scm is missing"
    language = ts_language(info)
    assert language is not None
    query = tree_sitter.Query(language, source)  # raises QueryError on any mistake
    names = {query.capture_name(i) for i in range(query.capture_count)}
    assert {n for n in names if not n.startswith("_")} <= CAPTURES[kind]
    assert query_for(info, kind) is not None  # type: ignore[arg-type]


def test_every_query_directory_is_used() -> None:
    used = {i.queries for i in load_registry().languages.values() if i.queries}
    entries = grammars_dir().iterdir()
    shipped = {e.name for e in entries if e.is_dir() and not e.name.startswith("_")}
    assert shipped == used


def test_samples_cover_every_grammar_language() -> None:
    covered = {language_for(None, sample["file"]).language_id for sample in SAMPLES}
    assert covered >= set(GRAMMAR_LANGUAGES) - {"javascriptreact"}


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["file"] for s in SAMPLES])
def test_queries_find_definitions_in_sample(sample: dict[str, object]) -> None:
    path = HERE / "samples" / str(sample["file"])
    doc = make_doc(path.read_text(encoding="utf-8"), None, name=path.name)
    assert doc.tree is not None and not doc.tree.root_node.has_error
    definitions = find_definitions(doc)
    functions = {d.name for d in definitions if d.kind == "function"}
    classes = {d.name for d in definitions if d.kind == "class"}
    assert functions == set(sample["functions"])  # type: ignore[arg-type]
    assert classes == set(sample["classes"])  # type: ignore[arg-type]
    imports = query_for(doc.language, "imports")
    assert imports is not None
    found = [m for m in run_matches(imports, doc.tree.root_node) if "import" in m]
    assert len(found) == sample["imports"]
    for definition in definitions:
        assert definition.name in definition.text
        assert doc.lines.line_of_byte(definition.start_byte) == definition.start_line


def test_missing_query_kind_is_none_not_an_error() -> None:
    info = load_registry().languages["markdown"]
    assert query_for(info, "scopes") is None
    assert query_source(info, "functions") is None
