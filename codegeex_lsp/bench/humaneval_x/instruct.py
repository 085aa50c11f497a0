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
