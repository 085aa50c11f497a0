"""Helpers for the post-processing tests: documents marked inline and the golden file format.

A document is written with the cursor as `█` (prefix█suffix). An expected result is either the
string "discard" or the document with the kept suggestion between `├` and `┤`.

Golden files (`golden/*.toml`):

    description = "what the case shows"
    language = "python"            # LSP languageId
    mode = "BLOCK"                 # LINE | BLOCK
    exercises = ["limit_scope"]    # filters whose removal from DEFAULT_PIPELINE changes the result
                                   # ("a+b": filters backing each other up, removed together)
    scope = { kind = "class", node_type = "class_declaration", indent = "" }   # optional
    document = '''...█...'''
    completion = '''raw model output'''
    expected = '''...├kept text┤...'''  # or expected = "discard"

TOML multi-line literal strings drop the line break right after the opening `'''`, so a value that
must start with a line break starts with an empty line.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from codegeex_lsp.context.scope import ScopeInfo
from codegeex_lsp.postprocess import DEFAULT_PIPELINE, run_pipeline
from codegeex_lsp.prompt.types import FimRequest

CURSOR = "█"
OPEN, CLOSE = "├", "┤"
DISCARD = "discard"
GOLDEN_DIR = Path(__file__).parent / "golden"


def split_document(document: str) -> tuple[str, str]:
    if document.count(CURSOR) != 1:
        raise ValueError(f"a document needs exactly one {CURSOR}")
    prefix, suffix = document.split(CURSOR)
    return prefix, suffix


def make(
    document: str,
    text: str,
    mode: str = "LINE",
    language: str = "python",
    scope: ScopeInfo | None = None,
) -> tuple[str, FimRequest]:
    """The raw suggestion `text` and the request of the marked `document`."""
    prefix, suffix = split_document(document)
    request = FimRequest(prefix, suffix, language, mode=mode, scope=scope)  # type: ignore[arg-type]
    return text, request


def render(request: FimRequest, result: str | None) -> str:
    """The outcome as written in golden files: "discard" or the document with ├kept┤ inline."""
    if result is None:
        return DISCARD
    return f"{request.prefix}{OPEN}{result}{CLOSE}{request.suffix}"


def filter_named(name: str):
    """The filter of DEFAULT_PIPELINE with that name (fails when it was taken out of the pipeline)."""
    found = [f for f in DEFAULT_PIPELINE if f.__name__ == name]
    assert found, f"{name} is not in DEFAULT_PIPELINE"
    return found[0]


def apply(name: str, made: tuple[str, FimRequest]) -> str | None:
    """Run only the named filter, as registered in DEFAULT_PIPELINE, on `make`'s text and request."""
    text, request = made
    return run_pipeline(text, request, filters=(filter_named(name),))


@dataclass(frozen=True)
class GoldenCase:
    path: Path
    description: str
    text: str  # the raw completion
    request: FimRequest
    expected: str
    exercises: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.stem


def load_golden(path: Path) -> GoldenCase:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    known = {"description", "language", "mode", "exercises", "scope", "document", "completion", "expected"}
    if unknown := set(data) - known:
        raise ValueError(f"{path.name}: unknown keys {sorted(unknown)}")
    scope = _scope(data["scope"]) if "scope" in data else None
    text, request = make(data["document"], data["completion"], data["mode"], data["language"], scope)
    expected = data["expected"]
    if expected != DISCARD:
        if expected.count(OPEN) != 1 or expected.count(CLOSE) != 1:
            raise ValueError(f"{path.name}: expected needs one {OPEN} and one {CLOSE}, or 'discard'")
        before, _, rest = expected.partition(OPEN)
        _, _, after = rest.partition(CLOSE)
        if (before, after) != (request.prefix, request.suffix):
            raise ValueError(f"{path.name}: expected must keep the document around {OPEN}...{CLOSE}")
    return GoldenCase(path, data["description"], text, request, expected, tuple(data["exercises"]))


def _scope(table: dict[str, str]) -> ScopeInfo:
    return ScopeInfo(
        kind=table["kind"],  # type: ignore[arg-type]
        node_type=table["node_type"],
        name=table.get("name"),
        start_byte=0,
        end_byte=0,
        start_line=0,
        end_line=0,
        indent=table["indent"],
    )


def golden_cases() -> list[GoldenCase]:
    return [load_golden(path) for path in sorted(GOLDEN_DIR.glob("*.toml"))]
