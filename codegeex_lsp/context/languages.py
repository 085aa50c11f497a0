"""The language registry: LSP languageId -> `LanguageInfo`, grammars and parsers.

The facts live in `grammars/languages.toml` (data, shipped as `codegeex_lsp.grammars`); this module
only loads them, answers look-ups and builds tree-sitter objects. An id nobody knows is not an
error: completion still works as plain text, and a note is logged once per id.
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path, PurePath
from typing import Literal

import tree_sitter

log = logging.getLogger(__name__)

BlockStyle = Literal["indent", "braces"]
Prose = Literal["content", "never"]
PLAINTEXT = "plaintext"
_BLOCK_STYLES = ("indent", "braces")
_PROSE = ("content", "never")
_unknown_ids_logged: set[str] = set()


@dataclass(frozen=True)
class LanguageInfo:
    """Everything later stages need to know about one language.

    `language_id` is the registry key (the canonical LSP languageId): aliases resolve to it.
    `grammar` is "<module>.<function>" of a tree-sitter wheel, or None when there is no tree.
    The lexical fields (comments, strings) feed the post-processing scanner, `prose` and
    `code_fences` its chat filter; `codegeex` and `codegeex_tag` feed the CodeGeeX prompts (see
    `grammars/languages.toml` for each field).
    """

    language_id: str
    name: str
    grammar: str | None = None
    queries: str | None = None
    block_style: BlockStyle | None = None
    line_comment: str | None = None
    more_line_comments: tuple[str, ...] = ()
    block_comment: tuple[str, str] | None = None
    strings: tuple[str, ...] = ()
    long_strings: tuple[str, ...] = ()
    char_literals: bool = False
    extensions: tuple[str, ...] = ()
    filenames: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    codegeex: bool = False
    codegeex_tag: str | None = None
    prose: Prose | None = None
    code_fences: bool = False

    @property
    def has_grammar(self) -> bool:
        """Whether a syntax tree can be built for this language."""
        return self.grammar is not None

    @property
    def line_comments(self) -> tuple[str, ...]:
        """Every token that starts a comment running to the end of the line, the usual one first."""
        return (self.line_comment, *self.more_line_comments) if self.line_comment else self.more_line_comments


@dataclass(frozen=True)
class Registry:
    """The loaded registry with its look-up tables (ids and aliases lower-cased)."""

    languages: Mapping[str, LanguageInfo]
    by_alias: Mapping[str, str]
    by_extension: Mapping[str, str]
    by_filename: Mapping[str, str]


def grammars_dir() -> Traversable:
    """The `grammars/` resource directory, installed or in a source checkout.

    Installed (also editable), it is the package `codegeex_lsp.grammars`; a bare checkout on
    PYTHONPATH has no such package, so fall back to the top-level directory of the repository.
    """
    try:
        return importlib.resources.files("codegeex_lsp.grammars")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "grammars"


def _str_tuple(entry: Mapping[str, object], key: str, language_id: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"languages.toml: [{language_id}].{key} must be a list of strings")
    return tuple(value)


def _opt_str(entry: Mapping[str, object], key: str, language_id: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"languages.toml: [{language_id}].{key} must be a string")
    return value


def _bool(entry: Mapping[str, object], key: str, language_id: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"languages.toml: [{language_id}].{key} must be true or false")
    return value


REQUIRED_KEYS = ("name", "strings")
"""Keys every entry states, even when empty (`strings = []`): a forgotten one would silently make
the scanner count brackets inside strings."""
OPTIONAL_KEYS = ("grammar", "queries", "block_style", "line_comment", "more_line_comments", "block_comment",
                 "long_strings", "char_literals", "extensions", "filenames", "aliases", "codegeex",
                 "codegeex_tag", "prose", "code_fences")


def _parse_entry(language_id: str, entry: Mapping[str, object]) -> LanguageInfo:
    """One registry entry; a malformed one is a packaging bug, so it raises with the entry's id."""
    if unknown := set(entry) - {*REQUIRED_KEYS, *OPTIONAL_KEYS}:
        raise ValueError(f"languages.toml: [{language_id}] has unknown keys {sorted(unknown)}")
    if missing := [key for key in REQUIRED_KEYS if key not in entry]:
        raise ValueError(f"languages.toml: [{language_id}] needs {', '.join(missing)}")
    name = _opt_str(entry, "name", language_id)
    if not name:
        raise ValueError(f"languages.toml: [{language_id}] needs a name")
    block_comment = _str_tuple(entry, "block_comment", language_id)
    if block_comment and len(block_comment) != 2:
        raise ValueError(f"languages.toml: [{language_id}].block_comment must be [open, close]")
    block_style = _opt_str(entry, "block_style", language_id)
    if block_style is not None and block_style not in _BLOCK_STYLES:
        raise ValueError(f"languages.toml: [{language_id}].block_style must be one of {_BLOCK_STYLES}")
    grammar = _opt_str(entry, "grammar", language_id)
    if grammar is not None and "." not in grammar:
        raise ValueError(f"languages.toml: [{language_id}].grammar must be '<module>.<function>'")
    line_comment = _opt_str(entry, "line_comment", language_id)
    codegeex = _bool(entry, "codegeex", language_id)
    codegeex_tag = _opt_str(entry, "codegeex_tag", language_id)
    if codegeex_tag is not None and not codegeex:
        raise ValueError(f"languages.toml: [{language_id}].codegeex_tag needs codegeex = true")
    if codegeex and codegeex_tag is None and not line_comment:
        raise ValueError(f"languages.toml: [{language_id}] needs a line_comment or a codegeex_tag")
    prose = _opt_str(entry, "prose", language_id)
    if prose is not None and prose not in _PROSE:
        raise ValueError(f"languages.toml: [{language_id}].prose must be one of {_PROSE}")
    return LanguageInfo(
        language_id=language_id,
        name=name,
        grammar=grammar,
        queries=_opt_str(entry, "queries", language_id),
        block_style=block_style,  # type: ignore[arg-type]  # checked against _BLOCK_STYLES above
        line_comment=line_comment,
        more_line_comments=_str_tuple(entry, "more_line_comments", language_id),
        block_comment=(block_comment[0], block_comment[1]) if block_comment else None,
        strings=_str_tuple(entry, "strings", language_id),
        long_strings=_str_tuple(entry, "long_strings", language_id),
        char_literals=_bool(entry, "char_literals", language_id),
        extensions=tuple(e.lower() for e in _str_tuple(entry, "extensions", language_id)),
        filenames=_str_tuple(entry, "filenames", language_id),
        aliases=tuple(a.lower() for a in _str_tuple(entry, "aliases", language_id)),
        codegeex=codegeex,
        codegeex_tag=codegeex_tag,
        prose=prose,  # type: ignore[arg-type]  # checked against _PROSE above
        code_fences=_bool(entry, "code_fences", language_id),
    )


def parse_registry(source: str) -> Registry:
    """Parse the text of a languages.toml; raises ValueError on a malformed entry or a clash."""
    table = tomllib.loads(source).get("languages", {})
    languages = {key: _parse_entry(key, entry) for key, entry in table.items()}
    if PLAINTEXT not in languages:
        raise ValueError("languages.toml: the plaintext entry is required (the fallback)")
    by_alias: dict[str, str] = {}
    by_extension: dict[str, str] = {}
    by_filename: dict[str, str] = {}
    for info in languages.values():
        for alias in (info.language_id.lower(), *info.aliases):
            if by_alias.setdefault(alias, info.language_id) != info.language_id:
                raise ValueError(f"languages.toml: id or alias {alias!r} is used twice")
        for ext in info.extensions:
            if by_extension.setdefault(ext, info.language_id) != info.language_id:
                raise ValueError(f"languages.toml: extension {ext!r} is used twice")
        for filename in info.filenames:
            if by_filename.setdefault(filename, info.language_id) != info.language_id:
                raise ValueError(f"languages.toml: file name {filename!r} is used twice")
    return Registry(languages, by_alias, by_extension, by_filename)


@functools.cache
def load_registry() -> Registry:
    """The shipped registry, read once per process."""
    return parse_registry(grammars_dir().joinpath("languages.toml").read_text(encoding="utf-8"))


def registered(language_id: str) -> LanguageInfo | None:
    """The entry of an id or alias (any case), or None: no file-name guess, no plain-text fallback."""
    registry = load_registry()
    key = registry.by_alias.get(language_id.lower())
    return registry.languages[key] if key is not None else None


def _language_for_path(registry: Registry, path: str | None) -> str | None:
    if not path:
        return None
    pure = PurePath(path)
    if pure.name in registry.by_filename:
        return registry.by_filename[pure.name]
    return registry.by_extension.get(pure.suffix.lower())


def language_for(language_id: str | None, path: str | None = None) -> LanguageInfo:
    """The language of a document: by languageId, else by file name/extension, else plaintext.

    "plaintext" itself counts as "don't know" when the path says more: clients send it for files
    whose type they could not detect.
    """
    registry = load_registry()
    key = registry.by_alias.get((language_id or "").lower())
    if key is not None and key != PLAINTEXT:
        return registry.languages[key]
    by_path = _language_for_path(registry, path)
    if by_path is not None:
        return registry.languages[by_path]
    if key is None and language_id not in _unknown_ids_logged:
        _unknown_ids_logged.add(language_id or "")
        log.info("unknown languageId %r (path %r): completing as plain text", language_id, path)
    return registry.languages[PLAINTEXT]


@functools.cache
def _load_language(grammar: str) -> tree_sitter.Language | None:
    module_name, _, function_name = grammar.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return tree_sitter.Language(getattr(module, function_name)())
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        log.warning("tree-sitter grammar %s unavailable (%s): no syntax tree for it", grammar, exc)
        return None


def ts_language(info: LanguageInfo) -> tree_sitter.Language | None:
    """The tree-sitter Language of `info` (cached), or None without a usable grammar."""
    return _load_language(info.grammar) if info.grammar else None


def parser_for(info: LanguageInfo) -> tree_sitter.Parser | None:
    """A fresh parser for `info`; one per document, since a parser is not shareable across threads."""
    language = ts_language(info)
    return tree_sitter.Parser(language) if language is not None else None
