"""The context stage's entry point: document + cursor -> frozen `CompletionContext` -> `FimRequest`.

The server calls `build_context` synchronously when a completion request arrives, so the result
is a snapshot: later edits to the document never change it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from codegeex_lsp.context.document import Document
from codegeex_lsp.context.languages import LanguageInfo
from codegeex_lsp.context.positions import Position
from codegeex_lsp.context.scope import CursorContext, Mode, ScopeInfo, analyze_cursor
from codegeex_lsp.context.snippets import display_path, find_references
from codegeex_lsp.prompt.budget import CHARS_PER_TOKEN
from codegeex_lsp.prompt.types import FimRequest, Reference


@dataclass(frozen=True)
class ContextOptions:
    """Knobs of the context stage; set once from the configuration, never per request."""

    near_lines: int = 30
    reference_tokens: int = 512
    max_snippet_lines: int = 40
    references: bool = True
    root: str | None = None


@dataclass(frozen=True)
class CompletionContext:
    """Everything later stages need about one completion request.

    `prefix`/`suffix` are the whole text before/after the cursor (the prompt stage budgets them).
    `path` is relative to `ContextOptions.root` when the document lies under it.
    `scope_end_in_suffix` is how many characters of `suffix` lie inside the innermost enclosing
    scope: the prompt stage keeps at least that much suffix, post-processing stops a block there.
    """

    prefix: str
    suffix: str
    language: LanguageInfo
    mode: Mode
    reason: str
    path: str | None
    uri: str
    position: Position
    cursor_byte: int
    scopes: tuple[ScopeInfo, ...] = ()
    scope_end_in_suffix: int | None = None
    in_comment: bool = False
    in_string: bool = False
    references: tuple[Reference, ...] = ()

    @property
    def scope(self) -> ScopeInfo | None:
        """The innermost enclosing function or class, if any."""
        return self.scopes[0] if self.scopes else None


def _scope_end_in_suffix(doc: Document, cursor: CursorContext, offset: int) -> int | None:
    scope = cursor.scope
    if scope is None:
        return None
    return max(doc.lines.byte_to_char(scope.end_byte) - offset, 0)


def build_context(
    doc: Document,
    position: Position,
    open_docs: Iterable[Document] = (),
    options: ContextOptions | None = None,
) -> CompletionContext:
    """Split the document at `position`, decide the mode and gather cross-file references.

    References are only looked up when the mode asks for a model call.
    """
    options = options or ContextOptions()
    offset = doc.offset_at(position)
    cursor_byte = doc.lines.char_to_byte(offset)
    cursor = analyze_cursor(doc, cursor_byte)
    references: tuple[Reference, ...] = ()
    if cursor.mode != "NONE" and options.references:
        references = find_references(
            doc, cursor_byte, open_docs,
            n_lines=options.near_lines,
            max_chars=options.reference_tokens * CHARS_PER_TOKEN,
            max_snippet_lines=options.max_snippet_lines,
            root=options.root,
        )
    return CompletionContext(
        prefix=doc.text[:offset],
        suffix=doc.text[offset:],
        language=doc.language,
        mode=cursor.mode,
        reason=cursor.reason,
        path=display_path(doc.path, options.root),
        uri=doc.uri,
        position=doc.position_at(offset),
        cursor_byte=cursor_byte,
        scopes=cursor.scopes,
        scope_end_in_suffix=_scope_end_in_suffix(doc, cursor, offset),
        in_comment=cursor.in_comment,
        in_string=cursor.in_string,
        references=references,
    )


def to_fim_request(ctx: CompletionContext, repo_name: str | None = None) -> FimRequest:
    """The prompt stage's input, carrying the innermost scope on to post-processing; a NONE context
    must not reach the model, so it raises."""
    if ctx.mode == "NONE":
        raise ValueError(f"no completion wanted at {ctx.uri}:{ctx.position} ({ctx.reason})")
    return FimRequest(
        prefix=ctx.prefix,
        suffix=ctx.suffix,
        language=ctx.language.language_id,
        path=ctx.path,
        mode=ctx.mode,
        references=ctx.references,
        repo_name=repo_name,
        scope=ctx.scope,
    )
