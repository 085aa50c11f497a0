"""Trim whitespace the document does not need.

- trailing whitespace of every line but the last;
- leading spaces and tabs when the cursor's line has text and already ends with whitespace
  (`x = █` and ` 42` gives `42`); an indentation-only line keeps the suggestion's indentation;
- trailing whitespace and line breaks when the rest of the cursor's line is empty or starts with
  whitespace (the suffix brings its own line break);
- but lines inserted above code (only indentation before the cursor, code after it, and a
  suggestion that ends with a line break: the model's own, or the one `cut_suffix_overlap` kept)
  end with one line break and the cursor line's indentation, so that code stays on its own line
  where it was: `█return x` and `y = 1\nx = y\n` gives `y = 1\nx = y\n`, not `x = yreturn x`.
"""

from __future__ import annotations

from codegeex_lsp.context.scope import cursor_before_code
from codegeex_lsp.postprocess._text import is_blank, line_after_cursor, line_before_cursor
from codegeex_lsp.prompt.types import FimRequest


def trim_space(text: str, request: FimRequest) -> str:
    lines = text.split("\n")
    text = "\n".join([line.rstrip() for line in lines[:-1]] + lines[-1:])
    line_prefix = line_before_cursor(request.prefix)
    if not is_blank(line_prefix) and line_prefix[-1] in " \t":
        text = text.lstrip(" \t")
    rest = line_after_cursor(request.suffix)
    before_code = cursor_before_code(request.prefix, request.suffix)
    if before_code and not is_blank(text) and text.rstrip(" \t").endswith("\n"):
        return text.rstrip() + "\n" + line_prefix
    if is_blank(rest) or rest[0] in " \t":
        text = text.rstrip()
    return text
