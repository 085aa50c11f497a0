"""Wire types of the prompt stage: what goes in (FimRequest) and what comes out (Prompt)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["LINE", "BLOCK"]
ScopeKind = Literal["function", "class"]


@dataclass(frozen=True)
class Reference:
    """Another file offered as context (CodeGeeX4 `###REFERENCE:`, Qwen `<|file_sep|>`)."""

    path: str
    text: str


@dataclass(frozen=True)
class ScopeInfo:
    """A function or class around the cursor. Lines are 0-based LSP lines, both inclusive.

    Found by the context stage (`context.scope`); defined here because it travels with the request
    to post-processing, in this process or the model worker's. `indent` is the leading whitespace of
    the scope's first line: an indent-language block ends at the first later line indented no deeper.
    """

    kind: ScopeKind
    node_type: str
    name: str | None
    start_byte: int
    end_byte: int
    start_line: int
    end_line: int
    indent: str


@dataclass(frozen=True)
class FimRequest:
    """Everything a format needs to build a fill-in-the-middle prompt.

    `language` is the LSP languageId (python, javascript, typescriptreact, cpp, go, rust, ...).
    `scope` is the innermost function or class around the cursor: a BLOCK suggestion may not leave
    it (decoding stops and post-processing cuts there).
    """

    prefix: str
    suffix: str = ""
    language: str = "plaintext"
    path: str | None = None
    mode: Mode = "LINE"
    references: tuple[Reference, ...] = ()
    repo_name: str | None = None
    scope: ScopeInfo | None = None


@dataclass(frozen=True)
class Budget:
    """Token budgets (text is cut at line boundaries keeping the text nearest the cursor), and where
    the cursor line goes.

    `carry_line`: in a format that `carries_line`, the cursor line's text before the cursor follows
    the middle token (the forced start of the middle) instead of ending the prefix. Why: every
    keystroke changes the end of the prefix, and in prefix-suffix-middle order the whole suffix
    comes after it, so without the carry each keystroke prefills the suffix again; with it, typing
    on a line only appends to the prompt, and the suffix is prefilled again only on a new line.
    The prefix then ends with the newline before the cursor line. The line's last word is not in the
    prompt but in `Prompt.forced_text`, spelled by decoding (token healing, see `build`). A blank
    cursor line stays put.
    """

    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    reference_tokens: int = 512
    # A cut prefix starts on a multiple of this many lines, so typing does not move the start.
    prefix_step_lines: int = 16
    carry_line: bool = True


@dataclass(frozen=True)
class Prompt:
    """A built prompt, ready for the engine."""

    format_name: str
    text: str
    token_ids: tuple[int, ...]
    stop_token_ids: tuple[int, ...]
    stop_strings: tuple[str, ...] = ()
    n_prefix_tokens: int = 0
    n_suffix_tokens: int = 0
    prefix_truncated: bool = False
    suffix_truncated: bool = False
    # The user's partial word at the cursor, left out of the prompt: decoding must spell it first
    # and the completion starts after it (see `Budget.carry_line`). Not part of `text`.
    forced_text: str = ""
    # Notes for logs and benchmarks: "prefix_first_line", "carry_line" (carried | nothing | off |
    # unsupported), "references", "text_markers".
    extras: dict[str, str] = field(default_factory=dict)
