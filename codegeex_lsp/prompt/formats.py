"""Prompt formats as data: one frozen `PromptFormat` per model family, nothing else.

A template is a string. `{field}` slots are filled by the builder; every token listed in
`special_tokens` that appears in a template is sent as its single id, never as text. Slots:

- `{prefix}`, `{suffix}`: the (budgeted) text before and after the cursor.
- `{path}`, `{language}`, `{language_tag}`, `{mode}`: request metadata (path "" when unknown).
- `{mask}`: the GLM blank token chosen from `mask_tokens` by mode ("END" when there is no suffix).
- `{references}`, `{current_file}`: the repository context of `references` (empty without it).
- `{bos}`, `{cls}`, `{eos}`: the tokenizer's own token for that role, omitted when it has none.

A format with `carries_line` (prefix-suffix-middle, ending with its middle token) may take the text
of the cursor's line after that token, as the start of the middle (`Budget.carry_line`).

Reference templates also take `{ref_path}`, `{ref_text}` (item) and `{repo}` (header).
Each format records where its template was checked (`source`); facts were checked, no code copied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Order = Literal["PSM", "SPM", "PREFIX"]
MaskKey = Literal["LINE", "BLOCK", "END"]

_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class ReferenceStyle:
    """How other files of the repository are written before the file being completed."""

    item: str
    header: str = ""
    footer: str = ""
    current_file: str = ""
    # Used when references are given without a repository name: the placeholder llama.cpp's server
    # writes for /infill, so the model sees what other local clients send.
    default_repo: str = "myproject"

    @property
    def templates(self) -> tuple[str, ...]:
        return (self.header, self.item, self.footer, self.current_file)


@dataclass(frozen=True)
class PromptFormat:
    """Everything that distinguishes one model family's fill-in-the-middle prompt."""

    name: str
    family: str
    order: Order
    template: str
    special_tokens: tuple[str, ...]
    stop_tokens: tuple[str, ...] = ()
    stop_strings: tuple[str, ...] = ()
    # Tokens some released tokenizers of the family lack (the model then learned them as plain text):
    # sent as one id where the tokenizer has one, as text otherwise, and not required by verification.
    text_markers: tuple[str, ...] = ()
    # (token, spelling of the same token in other vocabularies), e.g. CodeLlama's "▁<PRE>".
    aliases: tuple[tuple[str, str], ...] = ()
    mask_tokens: tuple[tuple[MaskKey, str], ...] = ()
    references: ReferenceStyle | None = None
    # The cursor line's text may follow the final (middle) token as the forced start of the middle,
    # so that typing on a line only appends to the prompt. Only byte-level BPE PSM formats: in SPM
    # and mask formats the prompt already ends at the cursor, and a sentencepiece tokenizer (Code
    # Llama) would put its dummy-prefix space in front of the carried text.
    carries_line: bool = False
    description: str = ""
    source: str = ""

    @property
    def fields(self) -> frozenset[str]:
        """The `{field}` slots of the main template."""
        return frozenset(_FIELD.findall(self.template))

    @property
    def takes_path(self) -> bool:
        in_refs = self.references is not None and any("{path}" in t for t in self.references.templates)
        return "path" in self.fields or in_refs

    @property
    def takes_language(self) -> bool:
        return bool({"language", "language_tag"} & self.fields)

    @property
    def takes_mode(self) -> bool:
        return "mode" in self.fields

    @property
    def takes_suffix(self) -> bool:
        return "suffix" in self.fields

    @property
    def takes_references(self) -> bool:
        return self.references is not None and "references" in self.fields

    @property
    def reference_tokens(self) -> tuple[str, ...]:
        """Tokens only the repository context uses: without them references are left out."""
        if self.references is None:
            return ()
        spelled = "".join(self.references.templates)
        return tuple(t for t in self.special_tokens if t in spelled and t not in self.template)

    @property
    def required_tokens(self) -> tuple[str, ...]:
        """Tokens that must each be exactly one id in the tokenizer for this format to work."""
        optional = set(self.text_markers) | set(self.reference_tokens)
        return tuple(t for t in self.special_tokens if t not in optional)

    def spellings(self, token: str) -> tuple[str, ...]:
        """The token and its aliases, in the order they are tried."""
        return (token, *(alias for name, alias in self.aliases if name == token))

    def mask_token(self, key: MaskKey) -> str:
        return dict(self.mask_tokens)[key]


CODEGEEX4 = PromptFormat(
    name="codegeex4",
    family="glm",
    order="SPM",
    template=(
        "[gMASK]<sop><|user|>\n{references}###PATH:{path}\n###LANGUAGE:{language}\n###MODE:{mode}\n"
        "<|code_suffix|>{suffix}<|code_prefix|>{prefix}<|code_middle|><|assistant|>\n"
    ),
    special_tokens=(
        "[gMASK]",
        "<sop>",
        "<|user|>",
        "<|assistant|>",
        "<|code_suffix|>",
        "<|code_prefix|>",
        "<|code_middle|>",
    ),
    # GLM-4-9B's tokenizer (which CodeGeeX4-ALL-9B reuses) has no <|code_*|> tokens; GLM-4.5's has.
    text_markers=("<|code_suffix|>", "<|code_prefix|>", "<|code_middle|>"),
    stop_tokens=("<|endoftext|>", "<|user|>", "<|observation|>"),
    # The guideline's "Format" block writes `###PATH:{path}` with no space, like the main header.
    references=ReferenceStyle(item="###REFERENCE:\n###PATH:{ref_path}\n{ref_text}\n"),
    description="CodeGeeX4-ALL-9B: chat-wrapped, suffix first, ###PATH/LANGUAGE/MODE, references",
    source="https://github.com/THUDM/CodeGeeX4/blob/main/guides/Infilling_guideline.md",
)

GLM45 = PromptFormat(
    name="glm4.5",
    family="glm",
    order="PSM",
    template="<|code_prefix|>{prefix}<|code_suffix|>{suffix}<|code_middle|>",
    special_tokens=("<|code_prefix|>", "<|code_suffix|>", "<|code_middle|>"),
    stop_tokens=("<|endoftext|>", "<|user|>", "<|observation|>"),
    carries_line=True,
    description="GLM-4.5 family: plain prefix-suffix-middle with <|code_*|> tokens",
    source="llama.cpp src/llama-vocab.cpp (the FIM token texts it detects for GLM-4.5)",
)

GLM = PromptFormat(
    name="glm",
    family="glm",
    order="PSM",
    # GLMTokenizer: `[CLS] text <eos>`, then build_inputs_for_generation appends <|startofpiece|>.
    template="{cls}{prefix}{mask}{suffix}{eos}<|startofpiece|>",
    special_tokens=("[MASK]", "[sMASK]", "[gMASK]", "<|startofpiece|>", "<|endofpiece|>"),
    mask_tokens=(("LINE", "[MASK]"), ("BLOCK", "[sMASK]"), ("END", "[gMASK]")),
    stop_tokens=("<|endofpiece|>",),
    description="GLM-1 blank infilling: [MASK]/[sMASK]/[gMASK] at the cursor, then <|startofpiece|>",
    source="https://github.com/THUDM/GLM (README; tokenization_glm.py build_inputs_for_generation)",
)

CODEGEEX2 = PromptFormat(
    name="codegeex2",
    family="glm",
    order="PREFIX",
    # ChatGLM2's tokenizer puts [gMASK] sop in front of every encoded prompt.
    template="[gMASK]sop{language_tag}{prefix}",
    special_tokens=("[gMASK]", "sop"),
    stop_tokens=("</s>",),
    description="CodeGeeX2-6B: language tag comment line, then the prefix only",
    source="https://github.com/THUDM/CodeGeeX2/blob/main/README_EN.md (language tag)",
)

QWEN25_CODER = PromptFormat(
    name="qwen2.5-coder",
    family="qwen",
    order="PSM",
    template="{references}<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>",
    special_tokens=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>", "<|file_sep|>"),
    # The eos list of the official examples: 151643 151645 151659..151664.
    stop_tokens=(
        "<|endoftext|>",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
        "<|im_end|>",
    ),
    references=ReferenceStyle(
        header="<|repo_name|>{repo}\n",
        item="<|file_sep|>{ref_path}\n{ref_text}\n",
        footer="<|file_sep|>{path}\n",
    ),
    carries_line=True,
    description="Qwen2.5-Coder: <|fim_*|> prefix-suffix-middle, repository form with references",
    source="https://github.com/QwenLM/Qwen2.5-Coder/blob/main/examples/Qwen2.5-Coder.md",
)

STARCODER = PromptFormat(
    name="starcoder",
    family="starcoder",
    order="PSM",
    # StarCoder2 repository FIM puts the current file's path inside the prefix, after <fim_prefix>.
    template="{references}<fim_prefix>{current_file}{prefix}<fim_suffix>{suffix}<fim_middle>",
    special_tokens=("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<repo_name>", "<file_sep>"),
    stop_tokens=("<|endoftext|>", "<file_sep>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>"),
    references=ReferenceStyle(
        header="<repo_name>{repo}",
        item="<file_sep>{ref_path}\n{ref_text}",
        footer="<file_sep>",
        current_file="{path}\n",
    ),
    carries_line=True,
    description="StarCoder/StarCoder2: <fim_*> prefix-suffix-middle, repository form with references",
    source="StarCoder2 paper, arXiv:2402.19173 (repository-context FIM example)",
)

DEEPSEEK_CODER = PromptFormat(
    name="deepseek-coder",
    family="deepseek",
    order="PSM",
    template="{bos}<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>",
    special_tokens=("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    stop_tokens=("<｜end▁of▁sentence｜>", "<|EOT|>", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    carries_line=True,
    description="DeepSeek-Coder: <｜fim▁begin｜>/<｜fim▁hole｜>/<｜fim▁end｜> prefix-suffix-middle",
    source="https://github.com/deepseek-ai/DeepSeek-Coder (README, Code Insertion)",
)

CODELLAMA = PromptFormat(
    name="codellama",
    family="llama",
    order="PSM",
    template="{bos}<PRE> {prefix} <SUF>{suffix} <MID>",
    special_tokens=("<PRE>", "<SUF>", "<MID>", "<EOT>"),
    aliases=(("<PRE>", "▁<PRE>"), ("<SUF>", "▁<SUF>"), ("<MID>", "▁<MID>"), ("<EOT>", "▁<EOT>")),
    stop_tokens=("<EOT>",),
    description="Code Llama: <PRE> prefix <SUF>suffix <MID>",
    source="https://github.com/meta-llama/codellama (generation.py infilling_prompt_tokens)",
)

CODESTRAL = PromptFormat(
    name="codestral",
    family="mistral",
    order="SPM",
    template="{bos}[SUFFIX]{suffix}[PREFIX]{prefix}",
    special_tokens=("[SUFFIX]", "[PREFIX]"),
    stop_tokens=("[SUFFIX]", "[PREFIX]", "[MIDDLE]"),
    description="Codestral: [SUFFIX]suffix[PREFIX]prefix, suffix first",
    source="https://github.com/mistralai/cookbook concept-deep-dive/tokenization (<s>[SUFFIX]..[PREFIX]..)",
)

FORMATS: tuple[PromptFormat, ...] = (
    CODEGEEX4,
    GLM45,
    GLM,
    CODEGEEX2,
    QWEN25_CODER,
    STARCODER,
    DEEPSEEK_CODER,
    CODELLAMA,
    CODESTRAL,
)
