"""Language names as the CodeGeeX models learned them, keyed by LSP languageId (or alias).

CodeGeeX4 wants a name on its `###LANGUAGE:` line ("mostly the name with an initial capital, with a
few exceptions", Infilling guideline); CodeGeeX2 wants a first-line tag written in the language's own
comment syntax, "<line comment> language: <name>". Both come from the language registry
(`grammars/languages.toml`): which languages the models know (`codegeex`), the name, the line comment,
and the verbatim tag where upstream's differs from that rule (Swift's lower-case name, Lua's `//`;
THUDM/CodeGeeX2 evaluation/utils.py LANGUAGE_TAG). An unknown languageId is not an error: CodeGeeX4
gets an empty name (the guideline allows it) and CodeGeeX2 gets no tag line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry imports the context package (tree-sitter, numpy): only when asked
    from codegeex_lsp.context.languages import LanguageInfo


@dataclass(frozen=True)
class CodegeexLanguage:
    """One language: the CodeGeeX4 name and the CodeGeeX2 tag line (without its newline)."""

    name: str
    tag: str


def codegeex_tag(info: LanguageInfo) -> str:
    """The CodeGeeX2 tag line of a language the models know."""
    if info.codegeex_tag is not None:
        return info.codegeex_tag
    return f"{info.line_comment} language: {info.name}"


def codegeex_language(language_id: str) -> CodegeexLanguage | None:
    """The CodeGeeX naming of an LSP languageId, or None when the models have no name for it."""
    from codegeex_lsp.context.languages import registered

    info = registered(language_id)
    if info is None or not info.codegeex:
        return None
    return CodegeexLanguage(name=info.name, tag=codegeex_tag(info))
