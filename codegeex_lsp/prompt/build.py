"""Assemble a `Prompt`: budget the request, render the format's template, encode it piece by piece.

Special tokens go in by id. Text between two special tokens (template text and user text together,
as the model saw it in training) is encoded as one run, with special-token matching off and the
injection guard of `tokens.encode_text`, so file contents can never turn into control tokens.
`Prompt.token_ids` is exactly the concatenation of those pieces, and `Prompt.text` their text.
In a format that carries the cursor line (`Budget.carry_line`), that line's text up to its last
word is the last piece, after the middle token, and the last word (the one being typed) is
`Prompt.forced_text`: decoding spells it first (token healing), and the generated text after it
starts exactly at the cursor.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codegeex_lsp.errors import PromptFormatError
from codegeex_lsp.prompt.budget import Cut, FittedReferences, cut_prefix, cut_suffix, fit_references
from codegeex_lsp.prompt.formats import PromptFormat
from codegeex_lsp.prompt.languages import codegeex_language
from codegeex_lsp.prompt.registry import verify_special_tokens
from codegeex_lsp.prompt.tokens import Protected, count_tokens, encode_text, protected_tokens
from codegeex_lsp.prompt.types import Budget, FimRequest, Prompt, Reference

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_FIELD = re.compile(r"\{(\w+)\}")
_ROLES = ("bos", "cls", "eos")


@dataclass(frozen=True)
class _Special:
    text: str
    token_id: int


_Segment = str | _Special
_Value = str | Sequence[_Segment]
_Render = Callable[[str, Mapping[str, _Value]], list[_Segment]]


def build_prompt(
    fmt: PromptFormat, tokenizer: PreTrainedTokenizerBase, request: FimRequest, budget: Budget
) -> Prompt:
    """Build the prompt for `request` in format `fmt`, within `budget` (in tokens of `tokenizer`)."""
    ids = verify_special_tokens(fmt, tokenizer)
    count = functools.partial(count_tokens, tokenizer)
    render = functools.partial(_render, fmt=fmt, ids=ids)
    extras: dict[str, str] = {}

    prefix = cut_prefix(request.prefix, budget.prefix_tokens, count, budget.prefix_step_lines)
    blank_suffix = not request.suffix.strip()
    use_suffix = fmt.takes_suffix and not (fmt.mask_tokens and blank_suffix)
    suffix = cut_suffix(request.suffix, budget.suffix_tokens, count) if use_suffix else Cut("", 0, False)
    extras["prefix_first_line"] = str(prefix.first_line)
    head, carried, forced = _carry_line(fmt, budget, prefix.text, tokenizer, extras)

    values: dict[str, _Value] = {
        "prefix": head,
        "suffix": suffix.text,
        "path": request.path or "",
        "mode": request.mode,
        "references": [],
        "current_file": [],
    }
    language = codegeex_language(request.language)
    values["language"] = language.name if language else ""
    values["language_tag"] = language.tag + "\n" if language else ""
    if fmt.mask_tokens:
        mask = fmt.mask_token("END" if blank_suffix else request.mode)
        values["mask"] = [_Special(mask, ids[mask])]
    for role in _ROLES:
        values[role] = _role_token(tokenizer, role)

    fitted = _fit_references(fmt, request, budget, ids, render, count, tokenizer, extras)
    if fitted is not None:
        values["references"], values["current_file"] = _repository_context(fmt, request, fitted, render)

    segments = render(fmt.template, values)
    if carried:
        segments.append(carried)
    protected = protected_tokens(tokenizer, ids.values())
    token_ids, text = _encode(segments, tokenizer, protected)
    as_text = [marker for marker in fmt.text_markers if marker not in ids]
    if as_text:
        extras["text_markers"] = " ".join(as_text)

    stop_ids = [ids[token] for token in fmt.stop_tokens if token in ids]
    if tokenizer.eos_token_id is not None:
        stop_ids.append(tokenizer.eos_token_id)
    stop_strings = (*fmt.stop_strings, *(token for token in fmt.stop_tokens if token not in ids))
    return Prompt(
        format_name=fmt.name,
        text=text,
        token_ids=tuple(token_ids),
        stop_token_ids=tuple(dict.fromkeys(stop_ids)),
        stop_strings=tuple(dict.fromkeys(stop_strings)),
        n_prefix_tokens=prefix.n_tokens,
        n_suffix_tokens=suffix.n_tokens,
        prefix_truncated=prefix.truncated,
        suffix_truncated=suffix.truncated,
        forced_text=forced,
        extras=extras,
    )


def _carry_line(
    fmt: PromptFormat,
    budget: Budget,
    prefix: str,
    tokenizer: PreTrainedTokenizerBase,
    extras: dict[str, str],
) -> tuple[str, str, str]:
    """(prefix through the newline before the cursor, the cursor line before its last word, that word).

    The carried text goes after the template's final (middle) token and the word is forced at the
    start of decoding; see `Budget.carry_line`. Why the word is split off: the tokens of a word cut
    at the cursor ("Ġres" "u" of "resu") are not those the model knows the whole word by
    ("Ġresult"), and a prompt ending in them derails it; whole words before it tokenize as in the
    finished line. A word is the tokenizer's own pre-token, so the prompt holds still while a word
    is typed and only grows by whole words. A tokenizer that cannot tell its words (no
    pre-tokenizer: a slow one, or a remote server's) gets no carry; a non-ASCII word stays in the
    carried text (decoding cannot force a part of a character).
    """
    if not fmt.carries_line:
        extras["carry_line"] = "unsupported"
        return prefix, "", ""
    if not budget.carry_line:
        extras["carry_line"] = "off"
        return prefix, "", ""
    line_start = prefix.rfind("\n") + 1
    line = prefix[line_start:]
    if not line.strip():
        extras["carry_line"] = "nothing"
        return prefix, "", ""
    word_at = _last_word_start(tokenizer, line)
    if word_at is None:
        extras["carry_line"] = "unsupported tokenizer"
        return prefix, "", ""
    extras["carry_line"] = "carried"
    if not line[word_at:].isascii():
        return prefix[:line_start], line, ""
    return prefix[:line_start], line[:word_at], line[word_at:]


def _last_word_start(tokenizer: PreTrainedTokenizerBase, line: str) -> int | None:
    """Where the tokenizer's last pre-token of `line` starts; None when it has no pre-tokenizer."""
    pre_tokenizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
    if pre_tokenizer is None:
        return None
    pieces = pre_tokenizer.pre_tokenize_str(line)
    return pieces[-1][1][0] if pieces else None


def _fit_references(
    fmt: PromptFormat,
    request: FimRequest,
    budget: Budget,
    ids: Mapping[str, int],
    render: _Render,
    count: Callable[[str], int],
    tokenizer: PreTrainedTokenizerBase,
    extras: dict[str, str],
) -> FittedReferences | None:
    """The references that fit, or None when the repository context is not written at all."""
    style = fmt.references
    if style is None or not fmt.takes_references:
        return None
    wants_repo = bool(request.repo_name) and "{repo}" in style.header
    if not request.references and not wants_repo:
        return None
    lacking = [token for token in fmt.reference_tokens if token not in ids]
    if lacking:
        extras["references"] = f"left out: the tokenizer has no {' '.join(lacking)}"
        return None

    def cost(ref: Reference) -> int:
        item = render(style.item, {"ref_path": ref.path, "ref_text": ref.text})
        return len(_encode(item, tokenizer, Protected(frozenset(), None))[0])

    fitted = fit_references(request.references, budget.reference_tokens, cost, count)
    extras["references"] = f"{len(fitted.references)} of {len(request.references)}"
    return fitted


def _repository_context(
    fmt: PromptFormat, request: FimRequest, fitted: FittedReferences, render: _Render
) -> tuple[list[_Segment], list[_Segment]]:
    style = fmt.references
    assert style is not None
    path = request.path or ""
    segments = render(style.header, {"repo": request.repo_name or style.default_repo})
    for ref in fitted.references:
        segments += render(style.item, {"ref_path": ref.path, "ref_text": ref.text})
    segments += render(style.footer, {"path": path})
    return segments, render(style.current_file, {"path": path})


def _role_token(tokenizer: PreTrainedTokenizerBase, role: str) -> list[_Segment]:
    token, token_id = getattr(tokenizer, f"{role}_token", None), getattr(tokenizer, f"{role}_token_id", None)
    if token is None or token_id is None:
        return []
    return [_Special(str(token), token_id)]


def _render(
    template: str, values: Mapping[str, _Value], *, fmt: PromptFormat, ids: Mapping[str, int]
) -> list[_Segment]:
    """Template -> segments: `{field}`s filled from `values`, special tokens split out by id."""
    segments: list[_Segment] = []
    pos = 0
    for match in _FIELD.finditer(template):
        segments += _split_specials(template[pos : match.start()], fmt, ids)
        value = values[match.group(1)]
        segments += [value] if isinstance(value, str) else value
        pos = match.end()
    segments += _split_specials(template[pos:], fmt, ids)
    return segments


def _split_specials(literal: str, fmt: PromptFormat, ids: Mapping[str, int]) -> list[_Segment]:
    if not literal:
        return []
    segments: list[_Segment] = []
    for index, part in enumerate(_specials_pattern(fmt.special_tokens).split(literal)):
        if index % 2 == 0:
            segments.append(part)
        elif part in ids:
            segments.append(_Special(part, ids[part]))
        elif part in fmt.text_markers:
            segments.append(part)
        else:
            raise PromptFormatError(f"the tokenizer has no single token for {part}; pass another --format")
    return segments


@functools.cache
def _specials_pattern(tokens: tuple[str, ...]) -> re.Pattern[str]:
    ordered = sorted(tokens, key=len, reverse=True)
    return re.compile("(" + "|".join(map(re.escape, ordered)) + ")")


def _encode(
    segments: Sequence[_Segment], tokenizer: PreTrainedTokenizerBase, protected: Protected
) -> tuple[list[int], str]:
    """Encode specials by id and each maximal run of text in one call."""
    token_ids: list[int] = []
    texts: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            text = "".join(run)
            token_ids.extend(encode_text(tokenizer, text, protected))
            texts.append(text)
            run.clear()

    for segment in segments:
        if isinstance(segment, _Special):
            flush()
            token_ids.append(segment.token_id)
            texts.append(segment.text)
        else:
            run.append(segment)
    flush()
    return token_ids, "".join(texts)
