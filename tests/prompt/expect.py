"""Expected token ids, computed straight from the tokenizer and independently of the prompt package."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class S:
    """A special token, expected as its single vocabulary id."""

    token: str


def expected_ids(tokenizer, *pieces: str | S) -> tuple[int, ...]:
    """Concatenate `[id(special)]` for each S and `tokenizer.encode(text)` for each text piece."""
    out: list[int] = []
    for piece in pieces:
        if isinstance(piece, S):
            token_id = tokenizer.convert_tokens_to_ids(piece.token)
            assert isinstance(token_id, int) and token_id != tokenizer.unk_token_id, piece
            out.append(token_id)
        else:
            out += tokenizer.encode(piece, add_special_tokens=False)
    return tuple(out)
