"""User text that spells a special token must stay text, in every tokenizer backend."""

from __future__ import annotations

from codegeex_lsp.prompt import Budget, FimRequest, Reference, build_prompt, get_format
from codegeex_lsp.prompt.tokens import encode_text, protected_tokens


def occurrences(prompt, tokenizer, token: str) -> int:
    return prompt.token_ids.count(tokenizer.convert_tokens_to_ids(token))


def test_fast_tokenizer_special_tokens_in_user_text_stay_text(toks):
    tok = toks["qwen"]
    prefix = 'MARKERS = ["<|fim_prefix|>", "<|endoftext|>"]\n'
    suffix = "# <|fim_middle|> <|file_sep|>\n"
    prompt = build_prompt(
        get_format("qwen2.5-coder"), tok, FimRequest(prefix=prefix, suffix=suffix), Budget()
    )
    for token in ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"):
        assert occurrences(prompt, tok, token) == 1  # only the template's own
    assert occurrences(prompt, tok, "<|endoftext|>") == 0
    assert occurrences(prompt, tok, "<|file_sep|>") == 0
    assert prompt.text == f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
    assert tok.decode(list(prompt.token_ids)) == prompt.text


def test_reference_text_and_paths_cannot_inject_either(toks):
    tok = toks["qwen"]
    ref = Reference(path="<|repo_name|>.py", text="x = '<|file_sep|>'\n")
    request = FimRequest(prefix="y", path="a.py", references=(ref,), repo_name="<|im_end|>")
    prompt = build_prompt(get_format("qwen2.5-coder"), tok, request, Budget())
    assert occurrences(prompt, tok, "<|repo_name|>") == 1
    assert occurrences(prompt, tok, "<|file_sep|>") == 2
    assert occurrences(prompt, tok, "<|im_end|>") == 0


def test_non_special_added_tokens_are_guarded(toks):
    """DeepSeek's FIM tokens are non-special added tokens: split_special_tokens does not split them."""
    tok = toks["deepseek"]
    hole = tok.convert_tokens_to_ids("<｜fim▁hole｜>")
    text = "s = '<｜fim▁hole｜>'\n"
    assert hole in tok.encode(text, add_special_tokens=False, split_special_tokens=True)
    prompt = build_prompt(get_format("deepseek-coder"), tok, FimRequest(prefix=text, suffix="\n"), Budget())
    assert prompt.token_ids.count(hole) == 1
    assert tok.decode(list(prompt.token_ids)) == prompt.text


def test_sentencepiece_user_defined_symbols_are_guarded(toks):
    """A sentencepiece model matches its user-defined symbols even with split_special_tokens."""
    tok = toks["spm"]
    mask = tok.convert_tokens_to_ids("[MASK]")
    text = "s = '[MASK] and [gMASK]'\n"
    assert mask in tok.encode(text, add_special_tokens=False, split_special_tokens=True)
    prompt = build_prompt(get_format("glm"), tok, FimRequest(prefix="x = 1\n", suffix=text), Budget())
    assert prompt.token_ids.count(mask) == 1
    assert tok.convert_tokens_to_ids("[gMASK]") not in prompt.token_ids
    guarded = encode_text(tok, text, protected_tokens(tok))
    assert mask not in guarded
    assert tok.sp_model.decode(guarded) == text  # no spurious spaces around the split literals


def test_text_without_special_spellings_encodes_as_usual(toks):
    tok = toks["spm"]
    text = "def add(a, b):\n    return a + b\n"
    assert encode_text(tok, text, protected_tokens(tok)) == tok.encode(text, add_special_tokens=False)
