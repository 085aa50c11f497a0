"""Do not emit a closing bracket the rest of the cursor's line already has.

The editor auto-closes brackets, so the suffix often starts with `)`, `]` or `}`; the model, seeing
the same suffix, still writes its own closer and more after it (`list.add(█)` and `item);`). Tabby
widens the replace range over the suffix's closer; this server only inserts, so the suggestion is
cut at its first closer that matches nothing inside the suggestion (it closes a bracket opened
before the cursor) when the rest of the line starts with that same closer: `item`. Brackets inside
strings and comments do not count.
"""

from __future__ import annotations

from codegeex_lsp.postprocess._lexer import CLOSE_TO_OPEN, lexical_for, match_brackets, scan, state_after
from codegeex_lsp.postprocess._text import line_after_cursor
from codegeex_lsp.prompt.types import FimRequest


def trim_closing_brackets(text: str, request: FimRequest) -> str:
    rest = line_after_cursor(request.suffix).lstrip()
    if not rest or rest[0] not in CLOSE_TO_OPEN:
        return text
    found = scan(text, lexical_for(request.language), state_after(request.prefix, request.language))
    unmatched = match_brackets(text, found).unmatched
    if not unmatched or text[unmatched[0]] != rest[0]:
        return text
    return text[: unmatched[0]].rstrip(" \t")
