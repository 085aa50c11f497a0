"""FIM prompts as text for a remote server, built by the same `build_prompt` as local ones.

Only text leaves this process: the remote server tokenizes it (its tokenizer turns the format's
special-token spellings into their ids, as vLLM, TGI and llama.cpp do for a raw prompt). Budgets
are counted in estimated tokens (`chars_per_token`, conservative for code), so a prompt fits the
server's context without us holding its tokenizer. Unlike a local prompt, text in the file that
spells a special token cannot be kept from the remote tokenizer.
"""

from __future__ import annotations

import math

from codegeex_lsp.prompt import Budget, FimRequest, Prompt, PromptFormat, build_prompt
from codegeex_lsp.prompt.budget import CHARS_PER_TOKEN, cut_prefix, cut_suffix

_TEXT_ID = 0  # every estimated text token; special tokens get 1..N


class TextTokenizer:
    """Stands in for a tokenizer in `build_prompt`: special tokens are single ids, text is counted."""

    unk_token = None
    unk_token_id = None
    bos_token = bos_token_id = None
    eos_token = eos_token_id = None
    cls_token = cls_token_id = None
    added_tokens_decoder: dict = {}  # noqa: RUF012 (read only)

    def __init__(self, fmt: PromptFormat, chars_per_token: float = CHARS_PER_TOKEN) -> None:
        spellings = [s for token in (*fmt.special_tokens, *fmt.stop_tokens) for s in fmt.spellings(token)]
        self._ids = {token: i + 1 for i, token in enumerate(dict.fromkeys(spellings))}
        self._tokens = {i: token for token, i in self._ids.items()}
        self.all_special_ids = list(self._ids.values())
        self.chars_per_token = chars_per_token

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self._ids.get(token)

    def convert_ids_to_tokens(self, token_id: int) -> str | None:
        return self._tokens.get(token_id)

    def encode(
        self, text: str, add_special_tokens: bool = False, split_special_tokens: bool = False
    ) -> list[int]:
        if not split_special_tokens and text in self._ids:
            return [self._ids[text]]
        return [_TEXT_ID] * self.count(text)

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token)


def build_text_prompt(
    fmt: PromptFormat, request: FimRequest, budget: Budget, chars_per_token: float = CHARS_PER_TOKEN
) -> tuple[str, tuple[str, ...]]:
    """(prompt text, stop strings) for `request` in `fmt`; stop tokens come back as their text."""
    tokenizer = TextTokenizer(fmt, chars_per_token)
    prompt: Prompt = build_prompt(fmt, tokenizer, request, budget)  # type: ignore[arg-type]
    stops = [tokenizer.convert_ids_to_tokens(i) for i in prompt.stop_token_ids]
    return prompt.text, tuple(dict.fromkeys([*(s for s in stops if s), *prompt.stop_strings]))


def split_for_suffix_api(
    request: FimRequest, budget: Budget, chars_per_token: float = CHARS_PER_TOKEN
) -> tuple[str, str]:
    """(prompt, suffix) for a server that builds the FIM prompt itself from the `suffix` parameter."""

    def count(text: str) -> int:
        return math.ceil(len(text) / chars_per_token)

    prefix = cut_prefix(request.prefix, budget.prefix_tokens, count, budget.prefix_step_lines)
    suffix = cut_suffix(request.suffix, budget.suffix_tokens, count)
    return prefix.text, suffix.text
