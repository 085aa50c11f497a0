"""The context stage: open documents, cursor analysis and cross-file references.

`build_context(doc, position, open_docs)` turns an editor snapshot into a frozen
`CompletionContext`; `to_fim_request` hands it to the prompt stage. Nothing here imports torch.
"""

from codegeex_lsp.context.build import CompletionContext, ContextOptions, build_context, to_fim_request
from codegeex_lsp.context.document import ContentChange, Document
from codegeex_lsp.context.languages import LanguageInfo, language_for, parser_for
from codegeex_lsp.context.positions import Position, PositionEncoding, Range
from codegeex_lsp.context.scope import CursorContext, ScopeInfo, analyze_cursor

__all__ = [
    "CompletionContext",
    "ContentChange",
    "ContextOptions",
    "CursorContext",
    "Document",
    "LanguageInfo",
    "Position",
    "PositionEncoding",
    "Range",
    "ScopeInfo",
    "analyze_cursor",
    "build_context",
    "language_for",
    "parser_for",
    "to_fim_request",
]
