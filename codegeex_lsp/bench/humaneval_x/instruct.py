"""HumanEval with an instruct model: the chat request and the usual answer extraction.

The request is EvalPlus's (the harness behind the Qwen2.5-Coder report's instruct HumanEval
figures): one user turn asking for a self-contained script in a markdown code block, the task
prompt inside a fence, rendered by the model's own chat template, and the assistant's turn begun
with EvalPlus's response prefix and an opened ```python fence (`ANSWER_OPENING`); the reply ends at
the closing fence (EvalPlus's extra stop "\n```\n") or the end of the turn. The answer is the first fenced
block that defines a function (else the first block, else the whole reply), sanitized as EvalPlus
does: a reply that does not parse as a whole (cut at max_tokens in the middle of its example calls)
is first narrowed to its longest syntactically valid run of lines (EvalPlus's `code_extract`), then
only imports, definitions and top-level assignments are kept, so example calls, prints, asserts or a
`__main__` block in the reply do not run with the tests.

The executed program is the task prompt (its imports and the stub, whose body is the docstring),
then the extracted code, which redefines the function, then the hidden tests.

`instruct-qwen` is the request of Qwen's own harness instead (QwenLM/Qwen2.5-Coder,
`qwencoder-eval/instruct/eval_plus/model.py`, class `ChatML`, and `generate.py`), the one behind the
report's instruct HumanEval figures: a raw ChatML string with its own system message, "Can you
complete the following Python function?", the stripped task prompt in a ```python fence, and the
assistant's turn begun with an opened ```python fence; greedy, up to 2,048 tokens, stopping at the
first of its stop strings (`QWEN_STOPS`: vLLM drops the stop string), then cut at any "```" left.
The reply is sanitized like an EvalPlus sample (`completion_from_reply`).
"""

from __future__ import annotations

import ast
import re

INSTRUCTION = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:"
)
ANSWER_OPENING = "```python\n"
"""Where the model's own text begins (after RESPONSE_PREFIX and a newline); kept on the raw sample so
that it reads as the fenced answer it is."""
REPLY_END = "\n```"
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_KEPT = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)


QWEN_SYSTEM = "You are an intelligent programming assistant to produce Python algorithmic solutions"
QWEN_REQUEST = "Can you complete the following Python function?"
QWEN_STOPS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|endofmask|>",
    "</s>",
    "\nif __name__",
    "\ndef main(",
    "\nprint(",
    "\n#",
    "\n```",
)
"""Qwen's harness: its module-level `EOS` list plus `ChatML`'s "\n```" (the humaneval extras of
`DecoderBase` apply only to direct completion, which `ChatML` turns off)."""


def qwen_prompt_text(prompt: str) -> str:
    """The exact string Qwen's harness sends to vLLM for a HumanEval prompt (no chat template)."""
    return (
        f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{QWEN_REQUEST}\n```python\n{prompt.strip()}\n```\n<|im_end|>\n"
        "<|im_start|>assistant\n```python\n"
    )


def qwen_reply_finished(text: str) -> bool:
    """A stop string of Qwen's harness has appeared."""
    return any(stop in text for stop in QWEN_STOPS)


def qwen_cut(text: str) -> str:
    """The sample Qwen's harness writes: the reply up to its first stop string, then up to any "```"."""
    ends = [i for i in (text.find(stop) for stop in QWEN_STOPS) if i != -1]
    text = text[: min(ends)] if ends else text
    return text.split("```")[0]


def user_message(prompt: str) -> str:
    """The one user turn for a HumanEval prompt."""
    return f"{INSTRUCTION}\n```\n{prompt.strip()}\n```\n"


def answer_prefill() -> str:
    """The start of the assistant's turn, appended after the rendered chat template."""
    return f"{RESPONSE_PREFIX}\n{ANSWER_OPENING}"


def reply_finished(text: str) -> bool:
    """The fence the answer opened is closed (`text` is the model's text after the prefill)."""
    return REPLY_END in text or text.startswith("```")


def extract_code(reply: str) -> str:
    """The code of the reply: the first fenced block with a `def`, else the first block, else all."""
    blocks = [body for _lang, body in _FENCE.findall(reply)]
    for body in blocks:
        if re.search(r"^\s*def ", body, re.MULTILINE):
            return body
    return blocks[0] if blocks else reply


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def longest_valid_lines(code: str) -> str:
    """EvalPlus's `code_extract`: the contiguous run of lines that parses and has the most non-blank
    lines (the first such run on ties); the code itself when it parses."""
    if _parses(code):
        return code
    lines = code.split("\n")
    best, best_count = (0, 0), 0
    for start in range(len(lines)):
        count = 0
        for end in range(start, len(lines)):
            count += bool(lines[end].strip())
            if count > best_count and _parses("\n".join(lines[start : end + 1])):
                best, best_count = (start, end + 1), count
    return "\n".join(lines[best[0] : best[1]])


def sanitize(code: str) -> str:
    """Keep imports, definitions and top-level assignments of the longest part of `code` that parses."""
    code = longest_valid_lines(code)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = code.splitlines(keepends=True)
    kept = []
    for node in tree.body:
        if isinstance(node, _KEPT):
            start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            kept.append("".join(lines[start - 1 : node.end_lineno]))
    return "\n".join(kept)


def completion_from_reply(reply: str) -> str:
    """What follows the task prompt in the executed program: the sanitized code at column 0, or, when
    the reply holds only a function body (no top-level definition), that body as is."""
    code = extract_code(reply)
    if re.search(r"^(def|async def|class|import|from) ", code, re.MULTILINE):
        return "\n" + sanitize(code) + "\n"
    return code
