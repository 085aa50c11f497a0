"""Tiny tokenizers trained in the test session, one per model family; no downloads.

A byte-level BPE is trained once on generated code and then copied per family with that family's
special tokens added, wrapped as a transformers fast tokenizer. A sentencepiece model (GLM-1 and
CodeGeeX2 style, `[MASK]` etc. as user-defined symbols) is trained too and wrapped in the slow
sentencepiece backend, because that backend behaves differently around special tokens.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
import sentencepiece as spm
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

GLM4_CHAT = ["[MASK]", "[sMASK]", "[gMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>", "<|assistant|>"]
GLM4_CODE = ["<|code_prefix|>", "<|code_suffix|>", "<|code_middle|>"]
QWEN = [
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
STARCODER = [
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<filename>",
    "<repo_name>",
    "<file_sep>",
]
DEEPSEEK_FIM = ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"]
CODELLAMA = ["<PRE>", "<SUF>", "<MID>", "<EOT>"]
CODESTRAL = ["[PREFIX]", "[SUFFIX]", "[MIDDLE]"]
SPM_SYMBOLS = ["[MASK]", "[sMASK]", "[gMASK]", "<|startofpiece|>", "<|endofpiece|>"]


def code_corpus() -> list[str]:
    """A few hundred lines of code in several languages, generated deterministically."""
    names = ["alpha", "beta", "count", "items", "value", "total", "index", "result", "parse", "render"]
    lines: list[str] = []
    for a, b in itertools.islice(itertools.permutations(names, 2), 60):
        lines += [
            f"def {a}_{b}({a}, {b}=None):",
            f"    if {a} is None:",
            f"        return {b}",
            f"    return [{a} + x for x in range(len({b}))]",
            f"function {a}{b.title()}({a}, {b}) {{ return {a} + {b}; }}",
            f"int {a}_{b}(const std::vector<int>& {a}) {{ return {a}.size() + {len(b)}; }}",
            f"fn {a}_{b}({a}: i32) -> i32 {{ {a} * {len(a)} }}",
            f"func {a.title()}{b.title()}({a} int) int {{\n\treturn {a} + {len(b)}\n}}",
        ]
    lines += [
        "import os",
        "import sys",
        "class Stack:",
        "    def push(self, x):",
        "        self.items.append(x)",
    ]
    return lines


def _train_bpe() -> str:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    backend.train_from_iterator((line + "\n" for line in code_corpus()), trainer)
    return backend.to_str()


def _fast(
    base: str, special: list[str], added: list[str] | None = None, **roles: str
) -> PreTrainedTokenizerFast:
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(base))
    tokenizer.add_special_tokens({**roles, "additional_special_tokens": special})
    if added:
        tokenizer.add_tokens(added)
    return tokenizer


class SpmTokenizer(SentencePieceBackend):
    """The slow sentencepiece backend as remote-code GLM tokenizers use it."""


def _train_spm(directory: Path) -> SpmTokenizer:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(code_corpus()),
        model_writer=model,
        vocab_size=400,
        model_type="bpe",
        user_defined_symbols=SPM_SYMBOLS,
        byte_fallback=True,
        character_coverage=1.0,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        minloglevel=2,
    )
    path = directory / "spm.model"
    path.write_bytes(model.getvalue())
    return SpmTokenizer(
        vocab_file=str(path),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        cls_token="[CLS]",
        additional_special_tokens=[*SPM_SYMBOLS, "sop", "eop"],
    )


@pytest.fixture(scope="session")
def bpe_base() -> str:
    """The trained byte-level BPE, serialized, before any special token is added."""
    return _train_bpe()


@pytest.fixture(scope="session")
def make_fast(bpe_base):
    """Build a fast tokenizer from the base BPE: make_fast(special, added=None, **roles)."""

    def make(special: list[str], added: list[str] | None = None, **roles: str) -> PreTrainedTokenizerFast:
        return _fast(bpe_base, special, added, **roles)

    return make


@pytest.fixture(scope="session")
def toks(bpe_base, tmp_path_factory) -> dict[str, object]:
    """Tokenizers by family name."""
    base = bpe_base
    return {
        # GLM-4.5-style vocabulary: chat tokens and <|code_*|> tokens.
        "glm4": _fast(base, [*GLM4_CHAT, *GLM4_CODE, "<|observation|>"], eos_token="<|endoftext|>"),
        # GLM-4-9B / CodeGeeX4-ALL-9B vocabulary: chat tokens only.
        "glm4_no_code": _fast(base, [*GLM4_CHAT, "<|observation|>"], eos_token="<|endoftext|>"),
        # <|code_*|> tokens without the chat tokens: only the plain PSM form fits.
        "glm4_psm": _fast(base, GLM4_CODE, eos_token="<|endoftext|>"),
        "qwen": _fast(base, QWEN, eos_token="<|endoftext|>"),
        "starcoder": _fast(base, STARCODER, eos_token="<|endoftext|>"),
        # DeepSeek adds its FIM tokens as ordinary (non-special) added tokens.
        "deepseek": _fast(
            base,
            ["<|EOT|>"],
            added=DEEPSEEK_FIM,
            bos_token="<｜begin▁of▁sentence｜>",
            eos_token="<｜end▁of▁sentence｜>",
        ),
        "codellama": _fast(base, CODELLAMA, bos_token="<s>", eos_token="</s>"),
        # The HF CodeLlama vocabulary spells its FIM tokens with the sentencepiece space mark.
        "codellama_hf": _fast(base, ["▁" + t for t in CODELLAMA], bos_token="<s>", eos_token="</s>"),
        "codestral": _fast(base, CODESTRAL, bos_token="<s>", eos_token="</s>"),
        "plain": _fast(base, [], eos_token="<|endoftext|>"),
        "spm": _train_spm(tmp_path_factory.mktemp("spm")),
    }
