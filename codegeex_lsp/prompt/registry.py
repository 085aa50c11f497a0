"""Finding a format: by name, by detection from tokenizer and model type, and verifying the fit.

Detection reads facts, not file names: the HF config's `model_type` narrows the candidates, then the
tokenizer's own vocabulary decides (a rule matches when each token it requires is exactly one id).
If the model type is unknown or no rule for it matches, every rule is tried on the vocabulary alone,
so a fine-tune with an unusual `model_type` still gets its family's format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from codegeex_lsp.errors import PromptFormatError
from codegeex_lsp.prompt.formats import FORMATS, PromptFormat
from codegeex_lsp.prompt.tokens import single_token_id

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_BY_NAME: dict[str, PromptFormat] = {fmt.name: fmt for fmt in FORMATS}

_GLM_TYPES = frozenset({"chatglm", "glm", "glm4"})
_CODE_TOKENS = ("<|code_prefix|>", "<|code_suffix|>", "<|code_middle|>")


@dataclass(frozen=True)
class DetectionRule:
    """`format_name` fits when every `requires` token is one id and no `forbids` token is."""

    format_name: str
    model_types: frozenset[str]
    requires: tuple[str, ...]
    forbids: tuple[str, ...] = ()


# Order matters: the first rule that fits wins (rules for the model's type are tried first).
DETECTION_RULES: tuple[DetectionRule, ...] = (
    # CodeGeeX4 is GLM-4-9B: chat tokens always, <|code_*|> only in some tokenizers. Without a model
    # type, a GLM chat vocabulary means CodeGeeX4 (this server's GLM model), with or without <|code_*|>.
    DetectionRule("codegeex4", _GLM_TYPES, ("[gMASK]", "<sop>", "<|user|>", "<|assistant|>")),
    DetectionRule("glm4.5", frozenset({"glm4_moe"}), _CODE_TOKENS),
    # GLM-1 (glm-10b) shares model_type "glm" with GLM-4's HF port; only GLM-1 has <|startofpiece|>.
    DetectionRule("glm", frozenset({"glm"}), ("[MASK]", "<|startofpiece|>")),
    # <|code_*|> without the chat tokens: only the plain PSM form can work.
    DetectionRule("glm4.5", _GLM_TYPES, _CODE_TOKENS),
    # CodeGeeX2 is ChatGLM2-6B ([gMASK] sop, no chat roles; ChatGLM3 adds <|user|>).
    DetectionRule("codegeex2", frozenset({"chatglm"}), ("[gMASK]", "sop"), forbids=("<|user|>",)),
    DetectionRule(
        "qwen2.5-coder",
        frozenset({"qwen2", "qwen2_moe", "qwen3", "qwen3_moe"}),
        ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ),
    DetectionRule(
        "starcoder",
        frozenset({"gpt_bigcode", "starcoder2"}),
        ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ),
    DetectionRule(
        "deepseek-coder",
        frozenset({"llama", "deepseek_v2", "deepseek_v3"}),
        ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    ),
    DetectionRule("codellama", frozenset({"llama"}), ("<PRE>", "<SUF>", "<MID>")),
    DetectionRule("codestral", frozenset({"mistral"}), ("[SUFFIX]", "[PREFIX]")),
)


def list_formats() -> list[str]:
    """Names of all known formats, in registry order."""
    return [fmt.name for fmt in FORMATS]


def get_format(name: str) -> PromptFormat:
    """The format called `name` (case-insensitive)."""
    fmt = _BY_NAME.get(name.strip().lower())
    if fmt is None:
        raise PromptFormatError(f"unknown prompt format {name!r}; use one of: {', '.join(list_formats())}")
    return fmt


def resolve_token(fmt: PromptFormat, tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    """The single id of `token` or of one of its aliases in this tokenizer, else None."""
    for spelling in fmt.spellings(token):
        token_id = single_token_id(tokenizer, spelling)
        if token_id is not None:
            return token_id
    return None


def verify_special_tokens(fmt: PromptFormat, tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Check that every token `fmt` requires is exactly one id; return the ids of all it can use.

    The result maps each resolvable special, text-marker, reference and stop token to its id; tokens
    the tokenizer lacks are absent (optional ones are then sent as text, or their feature dropped).
    """
    ids: dict[str, int] = {}
    for token in dict.fromkeys((*fmt.special_tokens, *fmt.stop_tokens)):
        token_id = resolve_token(fmt, tokenizer, token)
        if token_id is not None:
            ids[token] = token_id
    missing = [token for token in fmt.required_tokens if token not in ids]
    if missing:
        raise PromptFormatError(
            f"the tokenizer has no single token for {', '.join(missing)}, which prompt format "
            f"{fmt.name!r} needs; pass --format with one of: {', '.join(list_formats())}"
        )
    return ids


def detect_format(
    tokenizer: PreTrainedTokenizerBase, model_type: str | None, override: str | None = None
) -> PromptFormat:
    """Pick the format for a model: `override` if given, else the first detection rule that fits."""
    if override:
        return get_format(override)
    kind = (model_type or "").strip().lower()
    typed = [rule for rule in DETECTION_RULES if kind in rule.model_types]
    for rule in (*typed, *DETECTION_RULES):
        if _fits(rule, tokenizer):
            return get_format(rule.format_name)
    raise PromptFormatError(
        f"cannot tell the prompt format of this model (model_type={model_type or 'unknown'}, no known "
        f"fill-in-the-middle tokens in its tokenizer); pass --format with one of: {', '.join(list_formats())}"
    )


def _fits(rule: DetectionRule, tokenizer: PreTrainedTokenizerBase) -> bool:
    fmt = get_format(rule.format_name)

    def has(token: str) -> bool:
        return resolve_token(fmt, tokenizer, token) is not None

    return all(map(has, rule.requires)) and not any(map(has, rule.forbids))
