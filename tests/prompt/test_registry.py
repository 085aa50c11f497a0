"""Format look-up, detection per family, override, and loud verification failures."""

from __future__ import annotations

import pytest

from codegeex_lsp.errors import PromptFormatError
from codegeex_lsp.prompt import (
    Budget,
    FimRequest,
    build_prompt,
    detect_format,
    get_format,
    list_formats,
    verify_special_tokens,
)
from codegeex_lsp.prompt.tokens import single_token_id

ALL = [
    "codegeex4",
    "glm4.5",
    "glm",
    "codegeex2",
    "qwen2.5-coder",
    "starcoder",
    "deepseek-coder",
    "codellama",
    "codestral",
]


def test_list_and_get_formats():
    assert list_formats() == ALL
    for name in ALL:
        assert get_format(name).name == name
    assert get_format(" Qwen2.5-Coder ").name == "qwen2.5-coder"


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(PromptFormatError) as err:
        get_format("gpt-5")
    message = str(err.value)
    assert "'gpt-5'" in message and all(name in message for name in ALL)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("family", "model_type", "expected"),
    [
        ("glm4", "glm4_moe", "glm4.5"),
        ("glm4", "chatglm", "codegeex4"),
        ("glm4", "glm4", "codegeex4"),
        ("glm4", None, "codegeex4"),
        ("glm4_no_code", "chatglm", "codegeex4"),
        ("glm4_psm", "glm4", "glm4.5"),
        ("glm4_psm", None, "glm4.5"),
        ("spm", "glm", "glm"),
        ("spm", "chatglm", "codegeex2"),
        ("qwen", "qwen2", "qwen2.5-coder"),
        ("qwen", None, "qwen2.5-coder"),
        ("qwen", "some_finetune", "qwen2.5-coder"),
        ("starcoder", "starcoder2", "starcoder"),
        ("starcoder", "gpt_bigcode", "starcoder"),
        ("deepseek", "llama", "deepseek-coder"),
        ("deepseek", "deepseek_v2", "deepseek-coder"),
        ("codellama", "llama", "codellama"),
        ("codellama_hf", "llama", "codellama"),
        ("codestral", "mistral", "codestral"),
    ],
)
def test_detection_per_family(toks, family, model_type, expected):
    assert detect_format(toks[family], model_type).name == expected


def test_detection_fails_clearly_without_fim_tokens(toks):
    with pytest.raises(PromptFormatError) as err:
        detect_format(toks["plain"], "qwen2")
    assert "model_type=qwen2" in str(err.value) and "--format" in str(err.value)


def test_override_wins_over_detection(toks):
    assert detect_format(toks["qwen"], "qwen2", override="codellama").name == "codellama"
    assert detect_format(toks["plain"], None, override="starcoder").name == "starcoder"
    with pytest.raises(PromptFormatError, match="unknown prompt format 'nope'"):
        detect_format(toks["qwen"], "qwen2", override="nope")


def test_verification_names_every_missing_token(toks):
    with pytest.raises(PromptFormatError) as err:
        verify_special_tokens(get_format("qwen2.5-coder"), toks["plain"])
    message = str(err.value)
    assert "<|fim_prefix|>, <|fim_suffix|>, <|fim_middle|>" in message
    assert "'qwen2.5-coder'" in message and "--format" in message
    # Repository tokens are optional: without them references are left out, not refused.
    assert "<|repo_name|>" not in message


def test_verification_fails_for_another_family(toks):
    with pytest.raises(PromptFormatError, match=r"\[gMASK\], <sop>, <\|user\|>, <\|assistant\|>"):
        verify_special_tokens(get_format("codegeex4"), toks["qwen"])
    with pytest.raises(PromptFormatError, match="<EOT>"):
        verify_special_tokens(get_format("codellama"), toks["codestral"])
    with pytest.raises(PromptFormatError, match="<fim_prefix>"):
        build_prompt(get_format("starcoder"), toks["qwen"], FimRequest(prefix="x"), Budget())


def test_verification_returns_ids_of_usable_tokens(toks):
    tok = toks["glm4_no_code"]
    ids = verify_special_tokens(get_format("codegeex4"), tok)
    assert ids["[gMASK]"] == tok.convert_tokens_to_ids("[gMASK]")
    assert "<|code_prefix|>" not in ids  # a text marker this tokenizer lacks: sent as text


def test_a_token_must_encode_to_exactly_one_id(toks):
    tok = toks["qwen"]
    assert single_token_id(tok, "<|fim_prefix|>") == tok.convert_tokens_to_ids("<|fim_prefix|>")
    assert single_token_id(tok, "<|no_such_token|>") is None
    # A byte-level piece is in the vocabulary, but its spelling never encodes to it.
    piece = next(t for t in tok.get_vocab() if t.startswith("Ġ") and len(t) > 3)
    assert isinstance(tok.convert_tokens_to_ids(piece), int)
    assert single_token_id(tok, piece) is None
