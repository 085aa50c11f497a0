"""Talking to a Hugging Face tokenizer: single-token look-ups and injection-safe text encoding.

User text (file contents, paths) must never produce a control token: a file that contains the literal
text `<|fim_prefix|>` has to stay text. `split_special_tokens=True` is not enough on its own:
in transformers 5 a fast tokenizer still matches *non-special* added tokens (DeepSeek's FIM tokens
are added that way), and a sentencepiece model matches its user-defined symbols (GLM's `[MASK]`)
whatever the flag says. So every encoding is checked against the protected ids and, in the rare case
it hits one, the text is re-encoded with each protected literal spelled one character at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Encoded in front of a continuation piece and stripped again, so a sentencepiece tokenizer does not
# add its dummy-prefix space to it (the trick Meta's CodeLlama uses for the suffix).
_ANCHOR = "☺"


def single_token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    """The id of `token` if the tokenizer has it as exactly one token, else None.

    Both views must agree: the vocabulary look-up, and encoding the token's text (which catches a
    vocabulary that knows the string but never produces it, or produces it split).
    """
    try:
        token_id = tokenizer.convert_tokens_to_ids(token)
    except (KeyError, ValueError, TypeError):
        return None
    if not isinstance(token_id, int) or token_id < 0:
        return None
    if token_id == tokenizer.unk_token_id and token != tokenizer.unk_token:
        return None
    if list(tokenizer.encode(token, add_special_tokens=False)) != [token_id]:
        return None
    return token_id


def encode_plain(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Encode text with no added BOS/EOS and special-token matching switched off."""
    if not text:
        return []
    return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))


def count_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    return len(encode_plain(tokenizer, text))


@dataclass(frozen=True)
class Protected:
    """Ids user text must never encode to, and a pattern matching their literal spellings."""

    ids: frozenset[int]
    pattern: re.Pattern[str] | None


def protected_tokens(tokenizer: PreTrainedTokenizerBase, extra_ids: Iterable[int] = ()) -> Protected:
    """All special ids, every added token that is not plain whitespace, and `extra_ids`."""
    ids = set(tokenizer.all_special_ids) | set(extra_ids)
    for token_id, added in tokenizer.added_tokens_decoder.items():
        if not added.content.isspace():
            ids.add(token_id)
    literals = {tokenizer.convert_ids_to_tokens(i) for i in ids}
    literals = sorted((t for t in literals if isinstance(t, str) and len(t) > 1), key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, literals))) if literals else None
    return Protected(ids=frozenset(ids), pattern=pattern)


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str, protected: Protected) -> list[int]:
    """Encode user or template text so that it can never contain a protected id."""
    ids = encode_plain(tokenizer, text)
    if protected.ids.isdisjoint(ids) or protected.pattern is None:
        return ids
    out: list[int] = []
    pos = 0
    for match in protected.pattern.finditer(text):
        out += _encode_piece(tokenizer, text[pos : match.start()], continuation=pos > 0)
        for char in match.group():
            out += _encode_piece(tokenizer, char, continuation=True)
        pos = match.end()
    out += _encode_piece(tokenizer, text[pos:], continuation=pos > 0)
    return out


def _encode_piece(tokenizer: PreTrainedTokenizerBase, text: str, *, continuation: bool) -> list[int]:
    if not text:
        return []
    if continuation:
        anchor = encode_plain(tokenizer, _ANCHOR)
        both = encode_plain(tokenizer, _ANCHOR + text)
        if both[: len(anchor)] == anchor:
            return both[len(anchor) :]
    return encode_plain(tokenizer, text)
