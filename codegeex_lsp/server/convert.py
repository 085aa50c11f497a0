"""lsprotocol types <-> the package's own frozen types, and the position-encoding choice.

Nothing here touches documents or the model: pure functions the handlers call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lsprotocol import types as lsp

from codegeex_lsp.context import ContentChange, Position, PositionEncoding, Range
from codegeex_lsp.context.positions import count_units

_WORD_TAIL = re.compile(r"[\w$]*\Z")


def choose_encoding(capabilities: lsp.ClientCapabilities | None) -> PositionEncoding:
    """UTF-8 when the client offers it (no conversion for tree-sitter's bytes), else UTF-16.

    UTF-16 is the LSP default every client must support; UTF-32 alone is never chosen.
    """
    general = capabilities.general if capabilities is not None else None
    offered = (general.position_encodings if general is not None else None) or ()
    return "utf-8" if lsp.PositionEncodingKind.Utf8 in offered else "utf-16"


def supports_inline_completion(capabilities: lsp.ClientCapabilities | None) -> bool:
    text_document = capabilities.text_document if capabilities is not None else None
    return text_document is not None and text_document.inline_completion is not None


def supports_work_done_progress(capabilities: lsp.ClientCapabilities | None) -> bool:
    window = capabilities.window if capabilities is not None else None
    return bool(window is not None and window.work_done_progress)


def position_in(position: lsp.Position) -> Position:
    return Position(position.line, position.character)


def position_out(position: Position) -> lsp.Position:
    return lsp.Position(line=position.line, character=position.character)


def changes_in(changes: Sequence[lsp.TextDocumentContentChangeEvent]) -> list[ContentChange]:
    """didChange events in order; an event without a range replaces the whole text."""
    out = []
    for change in changes:
        range_ = getattr(change, "range", None)
        if range_ is None:
            out.append(ContentChange(change.text))
        else:
            out.append(ContentChange(change.text, Range(position_in(range_.start), position_in(range_.end))))
    return out


def inline_items(text: str | None, position: Position) -> lsp.InlineCompletionList:
    """One ghost-text item inserted at the cursor, or an empty list."""
    if not text:
        return lsp.InlineCompletionList(items=[])
    cursor = position_out(position)
    return lsp.InlineCompletionList(
        items=[lsp.InlineCompletionItem(insert_text=text, range=lsp.Range(start=cursor, end=cursor))]
    )


def completion_items(
    text: str | None, prefix: str, position: Position, encoding: PositionEncoding
) -> lsp.CompletionList:
    """The fallback for clients without inline completion: one item that replaces the word being typed.

    Clients filter items by the text between the edit's start and the cursor, so the edit starts at
    the identifier before the cursor and repeats it: the item survives the client's filtering while
    the user keeps typing. `is_incomplete` makes the client ask again on the next keystroke.
    """
    if not text:
        return lsp.CompletionList(is_incomplete=True, items=[])
    word = _WORD_TAIL.search(prefix[-256:]).group(0)
    start = Position(position.line, position.character - count_units(word, encoding))
    new_text = word + text
    lines = text.strip().splitlines() or [text]
    label = word + lines[0].rstrip() + (" …" if len(lines) > 1 else "")
    item = lsp.CompletionItem(
        label=label[:80],
        kind=lsp.CompletionItemKind.Text,
        detail="codegeex",
        documentation=new_text,
        filter_text=new_text,
        insert_text_format=lsp.InsertTextFormat.PlainText,
        text_edit=lsp.TextEdit(
            range=lsp.Range(start=position_out(start), end=position_out(position)), new_text=new_text
        ),
        sort_text="0",
        preselect=True,
    )
    return lsp.CompletionList(is_incomplete=True, items=[item])
