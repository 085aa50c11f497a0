"""Forced text: the first generated tokens must spell a given text, which is then not output.

Why (token healing of the cursor's word): a prompt that ends inside a word ends in tokens the model
has rarely seen followed by the rest of that word ("Ġres" "u", then "lt"), since training text is
tokenized whole ("Ġresult"); the embedded Qwen2.5-Coder then skips or garbles the rest of the word.
So the prompt stage leaves the cursor's last word out of the prompt (`Prompt.forced_text`), and
decoding writes it back: until it is spelled out, only tokens that agree with what is left of it can
be chosen, and the model picks its own tokenization of the whole word. The word is the user's, so
the generated text starts after it.
"""

from __future__ import annotations

import bisect
import functools
import weakref
from typing import Any

import torch

_LAST = "\U0010ffff"
_TABLES: weakref.WeakKeyDictionary[Any, TokenTexts] = weakref.WeakKeyDictionary()


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte (the spelling of byte-level BPE vocabularies)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    others = [b for b in range(256) if b not in printable]  # spelled as the code points from 256 on
    return {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(others)}


class TokenTexts:
    """The text of every ordinary token, indexed to find the tokens that agree with a text.

    Special and added tokens, and tokens that are not whole UTF-8 text (a byte of a multi-byte
    character), have no text here and are never allowed while text is forced.
    """

    def __init__(self, tokenizer: Any) -> None:
        excluded = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
        backend_decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        decoder = _byte_decoder() if type(backend_decoder).__name__ == "ByteLevel" else None
        self.texts: list[str | None] = []
        for token_id, piece in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))):
            text: str | None = None
            if token_id in excluded or not isinstance(piece, str):
                pass
            elif decoder is not None and all(char in decoder for char in piece):
                try:  # the fast path: a byte-level piece spells its bytes
                    text = bytes(decoder[char] for char in piece).decode("utf-8")
                except UnicodeDecodeError:
                    text = None
            else:
                text = tokenizer.decode([token_id])
                text = None if "\ufffd" in text else text
            self.texts.append(text or None)
        self._by_text: dict[str, list[int]] = {}
        for token_id, text in enumerate(self.texts):
            if text is not None:
                self._by_text.setdefault(text, []).append(token_id)
        self._sorted = sorted(self._by_text)

    def allowed(self, remaining: str) -> list[int]:
        """Ids whose text is a prefix of `remaining` or starts with it."""
        ids = [i for n in range(1, len(remaining)) for i in self._by_text.get(remaining[:n], ())]
        lo = bisect.bisect_left(self._sorted, remaining)
        hi = bisect.bisect_left(self._sorted, remaining + _LAST, lo)
        for text in self._sorted[lo:hi]:
            ids += self._by_text[text]
        return ids

    def advance(self, remaining: str, token_id: int) -> str:
        """What is left to force after `token_id` (one of `allowed(remaining)`)."""
        text = self.texts[token_id] if token_id < len(self.texts) else None
        if text is None or not remaining.startswith(text):
            return ""
        return remaining[len(text) :]


def token_texts(tokenizer: Any) -> TokenTexts:
    """The table of `tokenizer`, built once per tokenizer object (~0.5 s for a 150k vocabulary)."""
    table = _TABLES.get(tokenizer)
    if table is None:
        table = _TABLES[tokenizer] = TokenTexts(tokenizer)
    return table


def constrain(logits: torch.Tensor, rows: list[str], table: TokenTexts) -> tuple[torch.Tensor, list[bool]]:
    """logits [B, V] with each row b limited to the tokens that agree with `rows[b]` ("" : free).

    Returns the logits (a copy when anything is masked) and, per row, whether any token was allowed.
    """
    if not any(rows):
        return logits, [True] * len(rows)
    logits = logits.clone()
    possible = []
    for b, remaining in enumerate(rows):
        if not remaining:
            possible.append(True)
            continue
        ids = [i for i in table.allowed(remaining) if i < logits.shape[-1]]
        keep = torch.zeros(logits.shape[-1], dtype=torch.bool)
        keep[ids] = True
        logits[b, ~keep] = float("-inf")
        possible.append(bool(ids))
    return logits, possible
