"""Exact prompt snapshots (text and token ids) for every format, plus the format data itself."""

from __future__ import annotations

import pytest

from codegeex_lsp.prompt import FORMATS, Budget, FimRequest, Reference, build_prompt, get_format
from tests.prompt.expect import S, expected_ids

PREFIX = "def add(a, b):\n    "
SUFFIX = "\nprint(add(1, 2))\n"
REQUEST = FimRequest(prefix=PREFIX, suffix=SUFFIX, language="python", path="src/app.py", mode="LINE")
UTIL = Reference(path="lib/util.py", text="def helper():\n    return 1\n")


def build(name: str, tokenizer, request: FimRequest = REQUEST):
    return build_prompt(get_format(name), tokenizer, request, Budget())


def test_codegeex4_snapshot_puts_the_suffix_first(toks):
    tok = toks["glm4"]
    prompt = build("codegeex4", tok)
    assert prompt.text == (
        "[gMASK]<sop><|user|>\n###PATH:src/app.py\n###LANGUAGE:Python\n###MODE:LINE\n"
        "<|code_suffix|>\nprint(add(1, 2))\n<|code_prefix|>def add(a, b):\n    <|code_middle|><|assistant|>\n"
    )
    assert prompt.token_ids == expected_ids(
        tok,
        S("[gMASK]"),
        S("<sop>"),
        S("<|user|>"),
        "\n###PATH:src/app.py\n###LANGUAGE:Python\n###MODE:LINE\n",
        S("<|code_suffix|>"),
        SUFFIX,
        S("<|code_prefix|>"),
        PREFIX,
        S("<|code_middle|>"),
        S("<|assistant|>"),
        "\n",
    )
    assert prompt.stop_token_ids == expected_ids(tok, S("<|endoftext|>"), S("<|user|>"), S("<|observation|>"))
    assert prompt.stop_strings == ()
    assert tok.decode(list(prompt.token_ids)) == prompt.text


def test_codegeex4_block_mode_unknown_language_and_no_path(toks):
    request = FimRequest(prefix="x = 1\n", suffix="", language="brainfuck", mode="BLOCK")
    prompt = build("codegeex4", toks["glm4"], request)
    assert prompt.text == (
        "[gMASK]<sop><|user|>\n###PATH:\n###LANGUAGE:\n###MODE:BLOCK\n"
        "<|code_suffix|><|code_prefix|>x = 1\n<|code_middle|><|assistant|>\n"
    )


def test_codegeex4_sends_code_markers_as_text_when_the_tokenizer_lacks_them(toks):
    """GLM-4-9B's tokenizer (CodeGeeX4-ALL-9B's) has no <|code_*|> tokens: they stay text."""
    tok = toks["glm4_no_code"]
    prompt = build("codegeex4", tok)
    assert prompt.text == build("codegeex4", toks["glm4"]).text
    assert prompt.token_ids == expected_ids(
        tok,
        S("[gMASK]"),
        S("<sop>"),
        S("<|user|>"),
        "\n###PATH:src/app.py\n###LANGUAGE:Python\n###MODE:LINE\n<|code_suffix|>"
        + SUFFIX
        + "<|code_prefix|>"
        + PREFIX
        + "<|code_middle|>",
        S("<|assistant|>"),
        "\n",
    )
    assert prompt.extras["text_markers"] == "<|code_suffix|> <|code_prefix|> <|code_middle|>"


def test_codegeex4_reference_blocks_come_before_the_path(toks):
    tok = toks["glm4"]
    request = FimRequest(
        prefix=PREFIX, suffix=SUFFIX, language="python", path="src/app.py", references=(UTIL,)
    )
    prompt = build("codegeex4", tok, request)
    assert prompt.text == (
        "[gMASK]<sop><|user|>\n###REFERENCE:\n###PATH:lib/util.py\ndef helper():\n    return 1\n\n"
        "###PATH:src/app.py\n###LANGUAGE:Python\n###MODE:LINE\n"
        "<|code_suffix|>\nprint(add(1, 2))\n<|code_prefix|>def add(a, b):\n    <|code_middle|><|assistant|>\n"
    )
    assert prompt.extras["references"] == "1 of 1"


def test_glm45_snapshot_puts_the_prefix_first(toks):
    tok = toks["glm4"]
    prompt = build("glm4.5", tok)
    assert (
        prompt.text == "<|code_prefix|>def add(a, b):\n    <|code_suffix|>\nprint(add(1, 2))\n<|code_middle|>"
    )
    assert prompt.token_ids == expected_ids(
        tok, S("<|code_prefix|>"), PREFIX, S("<|code_suffix|>"), SUFFIX, S("<|code_middle|>")
    )
    assert prompt.stop_token_ids == expected_ids(tok, S("<|endoftext|>"), S("<|user|>"), S("<|observation|>"))


@pytest.mark.parametrize(
    ("mode", "mask"),
    [("LINE", "[MASK]"), ("BLOCK", "[sMASK]")],
)
def test_glm_blank_infilling(toks, mode, mask):
    tok = toks["spm"]
    prompt = build("glm", tok, FimRequest(prefix=PREFIX, suffix=SUFFIX, mode=mode))
    assert prompt.text == f"[CLS]def add(a, b):\n    {mask}\nprint(add(1, 2))\n</s><|startofpiece|>"
    assert prompt.token_ids == expected_ids(
        tok, S("[CLS]"), PREFIX, S(mask), SUFFIX, S("</s>"), S("<|startofpiece|>")
    )
    assert prompt.stop_token_ids == expected_ids(tok, S("<|endofpiece|>"), S("</s>"))


def test_glm_prefix_only_uses_gmask_at_the_end(toks):
    tok = toks["spm"]
    prompt = build("glm", tok, FimRequest(prefix=PREFIX, suffix="\n  \n"))
    assert prompt.text == "[CLS]def add(a, b):\n    [gMASK]</s><|startofpiece|>"
    assert prompt.token_ids == expected_ids(
        tok, S("[CLS]"), PREFIX, S("[gMASK]"), S("</s>"), S("<|startofpiece|>")
    )
    assert prompt.n_suffix_tokens == 0


@pytest.mark.parametrize(
    ("language", "tag"),
    [
        ("python", "# language: Python\n"),
        ("cpp", "// language: C++\n"),
        ("sql", "-- language: SQL\n"),
        ("html", "<!--language: HTML-->\n"),
        ("swift", "// language: swift\n"),
        ("nonsense", ""),
    ],
)
def test_codegeex2_tag_line_in_the_language_comment_syntax(toks, language, tag):
    tok = toks["spm"]
    prompt = build("codegeex2", tok, FimRequest(prefix=PREFIX, suffix=SUFFIX, language=language))
    assert prompt.text == f"[gMASK]sop{tag}def add(a, b):\n    "
    assert prompt.token_ids == expected_ids(tok, S("[gMASK]"), S("sop"), tag + PREFIX)
    assert prompt.n_suffix_tokens == 0


def test_qwen25_coder_snapshot(toks):
    tok = toks["qwen"]
    prompt = build("qwen2.5-coder", tok)
    assert prompt.text == "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\nprint(add(1, 2))\n<|fim_middle|>"
    assert prompt.token_ids == expected_ids(
        tok, S("<|fim_prefix|>"), PREFIX, S("<|fim_suffix|>"), SUFFIX, S("<|fim_middle|>")
    )
    assert prompt.stop_token_ids == expected_ids(
        tok,
        S("<|endoftext|>"),
        S("<|fim_prefix|>"),
        S("<|fim_suffix|>"),
        S("<|fim_middle|>"),
        S("<|fim_pad|>"),
        S("<|repo_name|>"),
        S("<|file_sep|>"),
        S("<|im_end|>"),
    )
    assert tok.decode(list(prompt.token_ids)) == prompt.text


def test_qwen25_coder_repository_form(toks):
    tok = toks["qwen"]
    request = FimRequest(
        prefix=PREFIX, suffix=SUFFIX, path="src/app.py", references=(UTIL,), repo_name="demo"
    )
    prompt = build("qwen2.5-coder", tok, request)
    assert prompt.text == (
        "<|repo_name|>demo\n<|file_sep|>lib/util.py\ndef helper():\n    return 1\n\n<|file_sep|>src/app.py\n"
        "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\nprint(add(1, 2))\n<|fim_middle|>"
    )
    assert prompt.token_ids == expected_ids(
        tok,
        S("<|repo_name|>"),
        "demo\n",
        S("<|file_sep|>"),
        "lib/util.py\ndef helper():\n    return 1\n\n",
        S("<|file_sep|>"),
        "src/app.py\n",
        S("<|fim_prefix|>"),
        PREFIX,
        S("<|fim_suffix|>"),
        SUFFIX,
        S("<|fim_middle|>"),
    )


def test_qwen25_coder_repository_form_without_a_repo_name_uses_the_placeholder(toks):
    request = FimRequest(prefix="x", path="a.py", references=(Reference("b.py", "y = 2\n"),))
    prompt = build("qwen2.5-coder", toks["qwen"], request)
    assert prompt.text.startswith("<|repo_name|>myproject\n<|file_sep|>b.py\ny = 2\n\n<|file_sep|>a.py\n")


def test_starcoder_snapshot_and_repository_form(toks):
    tok = toks["starcoder"]
    prompt = build("starcoder", tok)
    assert prompt.text == "<fim_prefix>def add(a, b):\n    <fim_suffix>\nprint(add(1, 2))\n<fim_middle>"
    assert prompt.token_ids == expected_ids(
        tok, S("<fim_prefix>"), PREFIX, S("<fim_suffix>"), SUFFIX, S("<fim_middle>")
    )

    request = FimRequest(
        prefix=PREFIX, suffix=SUFFIX, path="src/app.py", references=(UTIL,), repo_name="demo"
    )
    repo = build("starcoder", tok, request)
    assert repo.text == (
        "<repo_name>demo<file_sep>lib/util.py\ndef helper():\n    return 1\n<file_sep>"
        "<fim_prefix>src/app.py\ndef add(a, b):\n    <fim_suffix>\nprint(add(1, 2))\n<fim_middle>"
    )
    assert repo.token_ids == expected_ids(
        tok,
        S("<repo_name>"),
        "demo",
        S("<file_sep>"),
        "lib/util.py\ndef helper():\n    return 1\n",
        S("<file_sep>"),
        S("<fim_prefix>"),
        "src/app.py\n" + PREFIX,
        S("<fim_suffix>"),
        SUFFIX,
        S("<fim_middle>"),
    )


def test_starcoder_references_left_out_when_the_tokenizer_lacks_file_sep(make_fast):
    tok = make_fast(["<fim_prefix>", "<fim_suffix>", "<fim_middle>"], eos_token="<|endoftext|>")
    request = FimRequest(prefix=PREFIX, suffix=SUFFIX, path="src/app.py", references=(UTIL,))
    prompt = build("starcoder", tok, request)
    assert prompt.text == "<fim_prefix>def add(a, b):\n    <fim_suffix>\nprint(add(1, 2))\n<fim_middle>"
    assert "<repo_name> <file_sep>" in prompt.extras["references"]


def test_deepseek_coder_snapshot_with_fullwidth_bars(toks):
    tok = toks["deepseek"]
    prompt = build("deepseek-coder", tok)
    assert prompt.text == (
        "<｜begin▁of▁sentence｜><｜fim▁begin｜>def add(a, b):\n    <｜fim▁hole｜>\nprint(add(1, 2))\n<｜fim▁end｜>"
    )
    assert prompt.token_ids == expected_ids(
        tok,
        S("<｜begin▁of▁sentence｜>"),
        S("<｜fim▁begin｜>"),
        PREFIX,
        S("<｜fim▁hole｜>"),
        SUFFIX,
        S("<｜fim▁end｜>"),
    )
    assert tok.convert_ids_to_tokens(list(prompt.stop_token_ids))[:2] == ["<｜end▁of▁sentence｜>", "<|EOT|>"]


def test_codellama_snapshot(toks):
    tok = toks["codellama"]
    prompt = build("codellama", tok)
    assert prompt.text == "<s><PRE> def add(a, b):\n     <SUF>\nprint(add(1, 2))\n <MID>"
    assert prompt.token_ids == expected_ids(
        tok, S("<s>"), S("<PRE>"), " " + PREFIX + " ", S("<SUF>"), SUFFIX + " ", S("<MID>")
    )
    assert prompt.stop_token_ids == expected_ids(tok, S("<EOT>"), S("</s>"))


def test_codellama_accepts_the_sentencepiece_spelling_of_its_tokens(toks):
    tok = toks["codellama_hf"]
    prompt = build("codellama", tok)
    assert prompt.token_ids[:2] == expected_ids(tok, S("<s>"), S("▁<PRE>"))
    assert prompt.stop_token_ids == expected_ids(tok, S("▁<EOT>"), S("</s>"))


def test_codestral_snapshot_puts_the_suffix_first(toks):
    tok = toks["codestral"]
    prompt = build("codestral", tok)
    assert prompt.text == "<s>[SUFFIX]\nprint(add(1, 2))\n[PREFIX]def add(a, b):\n    "
    assert prompt.token_ids == expected_ids(tok, S("<s>"), S("[SUFFIX]"), SUFFIX, S("[PREFIX]"), PREFIX)
    assert prompt.stop_token_ids == expected_ids(tok, S("[SUFFIX]"), S("[PREFIX]"), S("[MIDDLE]"), S("</s>"))


def test_stop_tokens_are_only_those_present_plus_eos(make_fast):
    tok = make_fast(["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"], eos_token="<|endoftext|>")
    prompt = build("qwen2.5-coder", tok)
    assert prompt.stop_token_ids == expected_ids(
        tok, S("<|endoftext|>"), S("<|fim_prefix|>"), S("<|fim_suffix|>"), S("<|fim_middle|>")
    )
    assert prompt.stop_strings == ("<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|im_end|>")


def test_every_format_has_a_consistent_definition():
    fields = {
        "prefix", "suffix", "path", "language", "language_tag", "mode", "mask",
        "references", "current_file", "bos", "cls", "eos",
    }  # fmt: skip
    assert len({fmt.name for fmt in FORMATS}) == len(FORMATS)
    for fmt in FORMATS:
        assert fmt.fields <= fields, fmt.name
        assert "prefix" in fmt.fields, fmt.name
        assert set(fmt.text_markers) <= set(fmt.special_tokens), fmt.name
        assert set(dict(fmt.mask_tokens).values()) <= set(fmt.special_tokens), fmt.name
        assert fmt.source, fmt.name
        assert ("mask" in fmt.fields) == bool(fmt.mask_tokens), fmt.name
        if fmt.mask_tokens:
            assert {key for key, _ in fmt.mask_tokens} == {"LINE", "BLOCK", "END"}


def test_formats_declare_what_they_take():
    codegeex4, qwen, codegeex2, glm45 = (
        get_format(n) for n in ("codegeex4", "qwen2.5-coder", "codegeex2", "glm4.5")
    )
    assert (codegeex4.order, qwen.order, codegeex2.order, glm45.order) == ("SPM", "PSM", "PREFIX", "PSM")
    assert codegeex4.takes_path and codegeex4.takes_language and codegeex4.takes_mode
    assert codegeex4.takes_references and qwen.takes_references and qwen.takes_path
    assert codegeex2.takes_language and not codegeex2.takes_suffix and not codegeex2.takes_references
    assert not (glm45.takes_path or glm45.takes_language or glm45.takes_mode or glm45.takes_references)
    assert qwen.reference_tokens == ("<|repo_name|>", "<|file_sep|>")
    assert codegeex4.required_tokens == ("[gMASK]", "<sop>", "<|user|>", "<|assistant|>")
