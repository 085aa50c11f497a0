"""Language names as the CodeGeeX models learned them, keyed by LSP languageId.

CodeGeeX4 wants a name on its `###LANGUAGE:` line ("mostly the name with an initial capital, with a
few exceptions", Infilling guideline); CodeGeeX2 wants a first-line tag written in the language's own
comment syntax. Both come from one table so the two stay consistent. The tags are copied verbatim from
https://github.com/THUDM/CodeGeeX2/blob/main/evaluation/utils.py (LANGUAGE_TAG), quirks included:
Swift's tag is lower-case and Lua's uses `//`, because that is what the model was trained on.
An unknown languageId is not an error: CodeGeeX4 gets an empty name (the guideline allows it) and
CodeGeeX2 gets no tag line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodegeexLanguage:
    """One language: the CodeGeeX4 name and the CodeGeeX2 tag line (without its newline)."""

    name: str
    tag: str


def _lang(name: str, comment: str) -> CodegeexLanguage:
    return CodegeexLanguage(name=name, tag=comment.replace("NAME", name))


_PYTHON = _lang("Python", "# language: NAME")
_JAVASCRIPT = _lang("JavaScript", "// language: NAME")
_TYPESCRIPT = _lang("TypeScript", "// language: NAME")
_TEX = _lang("TeX", "% language: NAME")

LANGUAGES: dict[str, CodegeexLanguage] = {
    "python": _PYTHON,
    "javascript": _JAVASCRIPT,
    "javascriptreact": _JAVASCRIPT,
    "typescript": _TYPESCRIPT,
    "typescriptreact": _TYPESCRIPT,
    "c": _lang("C", "// language: NAME"),
    "cpp": _lang("C++", "// language: NAME"),
    "cuda-cpp": _lang("Cuda", "// language: NAME"),
    "csharp": _lang("C#", "// language: NAME"),
    "java": _lang("Java", "// language: NAME"),
    "go": _lang("Go", "// language: NAME"),
    "rust": _lang("Rust", "// language: NAME"),
    "kotlin": _lang("Kotlin", "// language: NAME"),
    "scala": _lang("Scala", "// language: NAME"),
    "swift": CodegeexLanguage(name="Swift", tag="// language: swift"),
    "objective-c": _lang("Objective-C", "// language: NAME"),
    "objective-cpp": _lang("Objective-C++", "// language: NAME"),
    "php": _lang("PHP", "// language: NAME"),
    "dart": _lang("Dart", "// language: NAME"),
    "lua": _lang("Lua", "// language: NAME"),
    "groovy": _lang("Groovy", "// language: NAME"),
    "pascal": _lang("Pascal", "// language: NAME"),
    "solidity": _lang("Solidity", "// language: NAME"),
    "verilog": _lang("Verilog", "// language: NAME"),
    "systemverilog": _lang("SystemVerilog", "// language: NAME"),
    "glsl": _lang("GLSL", "// language: NAME"),
    "zig": _lang("Zig", "// language: NAME"),
    "fsharp": _lang("F#", "// language: NAME"),
    "ruby": _lang("Ruby", "# language: NAME"),
    "perl": _lang("Perl", "# language: NAME"),
    "r": _lang("R", "# language: NAME"),
    "julia": _lang("Julia", "# language: NAME"),
    "elixir": _lang("Elixir", "# language: NAME"),
    "shellscript": _lang("Shell", "# language: NAME"),
    "powershell": _lang("PowerShell", "# language: NAME"),
    "dockerfile": _lang("Dockerfile", "# language: NAME"),
    "makefile": _lang("Makefile", "# language: NAME"),
    "cmake": _lang("CMake", "# language: NAME"),
    "yaml": _lang("YAML", "# language: NAME"),
    "coffeescript": _lang("CoffeeScript", "# language: NAME"),
    "sql": _lang("SQL", "-- language: NAME"),
    "haskell": _lang("Haskell", "-- language: NAME"),
    "elm": _lang("Elm", "-- language: NAME"),
    "vhdl": _lang("VHDL", "-- language: NAME"),
    "clojure": _lang("Clojure", "; language: NAME"),
    "scheme": _lang("Scheme", "; language: NAME"),
    "racket": _lang("Racket", "; language: NAME"),
    "erlang": _lang("Erlang", "% language: NAME"),
    "matlab": _lang("Matlab", "% language: NAME"),
    "tex": _TEX,
    "latex": _TEX,
    "html": _lang("HTML", "<!--language: NAME-->"),
    "markdown": _lang("Markdown", "<!--language: NAME-->"),
    "vue": _lang("Vue", "<!--language: NAME-->"),
    "css": _lang("CSS", "/* language: NAME */"),
    "ocaml": _lang("OCaml", "(*language: NAME*)"),
    "fortran": _lang("Fortran", "!language: NAME"),
    "vb": _lang("Visual Basic", "' language: NAME"),
}


def codegeex_language(language_id: str) -> CodegeexLanguage | None:
    """The CodeGeeX naming of an LSP languageId, or None when the models have no name for it."""
    return LANGUAGES.get(language_id.lower())
