"""Whitespace healing: leave the cursor's trailing spaces out of the prompt, take them back after.

BPE vocabularies merge indentation with the word that follows (`ĠĠĠ` + `Ġreturn`), so a prompt
that ends in a lone indentation token is one the model never saw in training: the embedded
Qwen2.5-Coder answers a function body cursor after a docstring with another docstring instead of the
body. Ending the prefix before the spaces lets the model write the indentation itself; the part the
user already typed is then removed from its answer.
"""

from __future__ import annotations

_HORIZONTAL = " \t"


def split_trailing_whitespace(prefix: str) -> tuple[str, str]:
    """(prefix without trailing spaces/tabs, those spaces/tabs)."""
    kept = prefix.rstrip(_HORIZONTAL)
    return kept, prefix[len(kept) :]


def heal(text: str, trailing: str) -> str:
    """The model's text as inserted after `trailing`, which the user has already typed.

    The model re-creates the whitespace, usually exactly; when it indents differently on the same
    line, its leading spaces are dropped (the cursor's indentation wins). A text that starts a new
    line is left alone.
    """
    if not trailing:
        return text
    if text.startswith(trailing):
        return text[len(trailing) :]
    return text.lstrip(_HORIZONTAL)
