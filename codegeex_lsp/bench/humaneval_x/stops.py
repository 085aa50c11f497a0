"""Where a generated function body ends: cut a completion before the model writes the next thing.

HumanEval-X prompts stop inside one function, so a completion is only good up to that function's
end. Python has no closing token, so it is cut at the first stop string (a new top-level statement).
Brace languages are cut right after the `}` that closes the braces the prompt left open, found by a
small lexer that skips comments, strings and character literals (a `"}"` must not count). Java
prompts leave two braces open (class and method); the method is cut and the class closed again.

The lexer is deliberately forgiving: text it cannot read (a JS regex literal holding a brace, say)
only moves the cut, and a completion whose braces never balance is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

PYTHON_STOPS: tuple[str, ...] = (
    "\ndef ",
    "\nclass ",
    "\nif __name__",
    "\nprint(",
    "\n@",
    "\nassert ",
    "\n#",
)
"""Column-0 starts of a new top-level statement: the body the prompt opened is over."""

BRACE_LANGUAGES: frozenset[str] = frozenset({"cpp", "java", "js", "go", "rust"})


def truncate_completion(language: str, prompt: str, completion: str) -> str:
    """The part of `completion` that finishes the prompt's function (plus, for Java, its class)."""
    if language == "python":
        return truncate_at_stops(completion, PYTHON_STOPS)
    if language in BRACE_LANGUAGES:
        return truncate_at_balance(language, prompt, completion)
    raise ValueError(f"no stop rule for language {language!r}")


def truncate_at_stops(completion: str, stops: tuple[str, ...]) -> str:
    """`completion` up to the earliest stop string (unchanged when none occurs)."""
    cut = min((i for i in (completion.find(stop) for stop in stops) if i != -1), default=len(completion))
    return completion[:cut]


def truncate_at_balance(language: str, prompt: str, completion: str) -> str:
    """Cut after the brace that closes the innermost block open at the end of `prompt`.

    The outer blocks the prompt opened (Java's class) are closed again with one `}` line each, so the
    result still compiles when the model went on writing after the function.
    """
    boundary = len(prompt)
    depth_at_boundary = 0
    for index, depth in brace_depths(language, prompt + completion):
        if index < boundary:
            depth_at_boundary = depth
        elif depth < depth_at_boundary:
            outer_closers = "".join("\n}" for _ in range(depth))
            return completion[: index + 1 - boundary] + outer_closers + "\n"
    return completion


def brace_depths(language: str, text: str) -> Iterator[tuple[int, int]]:
    """(index, depth after it) for every `{` and `}` in code, skipping comments and literals.

    JavaScript template literals are followed into their `${...}` holes, which are code.
    """
    n = len(text)
    i = 0
    depth = 0
    # One entry per `${` hole we are inside: the depth at which its `}` returns to the template.
    template_holes: list[int] = []
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline == -1 else newline + 1
            continue
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if c == '"':
            i = _skip_rust_raw(text, i) if language == "rust" else _skip_quoted(text, i, '"')
            continue
        if c == "r" and language == "rust" and _raw_string_start(text, i):
            i = _skip_rust_raw(text, i + 1)
            continue
        if c == "'":
            i = _skip_single_quote(language, text, i)
            continue
        if c == "`" and language == "go":
            end = text.find("`", i + 1)
            i = n if end == -1 else end + 1
            continue
        if c == "`" and language == "js":
            i, entered_hole = _skip_template(text, i + 1)
            if entered_hole:
                depth += 1
                template_holes.append(depth)
                yield i - 1, depth
            continue
        if c == "{":
            depth += 1
            yield i, depth
        elif c == "}":
            if template_holes and template_holes[-1] == depth:
                # The end of a `${...}` hole: back inside the template literal.
                template_holes.pop()
                depth -= 1
                yield i, depth
                i, entered_hole = _skip_template(text, i + 1)
                if entered_hole:
                    depth += 1
                    template_holes.append(depth)
                    yield i - 1, depth
                continue
            depth -= 1
            yield i, depth
        i += 1


def _skip_quoted(text: str, start: int, quote: str, *, multiline: bool = False) -> int:
    """Index after the literal opened at `start`; unless `multiline`, a newline also ends it (the
    model left it unterminated, and the rest of the text must not be swallowed)."""
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i + 1
        if c == "\n" and not multiline:
            return i + 1
        i += 1
    return len(text)


def _skip_single_quote(language: str, text: str, start: int) -> int:
    if language != "rust":
        return _skip_quoted(text, start, "'")
    # Rust: 'x' and '\n' are chars, but 'a in `&'a str` is a lifetime with no closing quote.
    if text.startswith("\\", start + 1):
        return _skip_quoted(text, start, "'")
    if start + 2 < len(text) and text[start + 2] == "'":
        return start + 3
    return start + 1


def _raw_string_start(text: str, i: int) -> bool:
    """`r"` or `r#..."` at `i`, not the tail of an identifier like `for"`."""
    if i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"):
        return False
    j = i + 1
    while j < len(text) and text[j] == "#":
        j += 1
    return j < len(text) and text[j] == '"'


def _skip_rust_raw(text: str, start: int) -> int:
    """Index after a Rust string starting at `start` (`"`, or the `#`s of a raw string)."""
    hashes = 0
    while start + hashes < len(text) and text[start + hashes] == "#":
        hashes += 1
    if hashes == 0:
        return _skip_quoted(text, start, '"', multiline=True)
    closer = '"' + "#" * hashes
    end = text.find(closer, start + hashes + 1)
    return len(text) if end == -1 else end + len(closer)


def _skip_template(text: str, i: int) -> tuple[int, bool]:
    """From inside a JS template literal: (index after its end or after `${`, whether a hole opened)."""
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "`":
            return i + 1, False
        if c == "$" and text.startswith("${", i):
            return i + 2, True
        i += 1
    return len(text), False


PROTOCOLS: tuple[str, ...] = ("codegeex", "fim", "instruct", "instruct-qwen")
"""How a HumanEval-X prompt is put to the model and its answer cut (see `postprocess`)."""

CODEGEEX_PYTHON_END_WORDS: tuple[str, ...] = ("\ndef", "\nclass", "\nif", "\n#", "\nprint", "\nassert")
"""CodeGeeX's `cleanup_code` end words for Python (its generation check omits `\\nassert`)."""


def codegeex_finished(language: str, completion: str) -> bool:
    """CodeGeeX's `is_code_generation_finished`: stop decoding here.

    Python: a non-blank line that starts unindented, or an end word. Brace languages: the
    completion holds one more `}` than `{` (counted naively, as theirs does); Rust, which CodeGeeX's
    harness predates, gets the same rule.
    """
    if language == "python":
        if any(line.strip() and line[0] not in " \t" for line in completion.split("\n")):
            return True
        return any(word in completion for word in CODEGEEX_PYTHON_END_WORDS[:-1])
    if language in BRACE_LANGUAGES:
        return completion.count("{") + 1 == completion.count("}")
    raise ValueError(f"no stop rule for language {language!r}")


def codegeex_cleanup(language: str, completion: str) -> str:
    """CodeGeeX's `cleanup_code` for HumanEval: the completion as their harness executes it."""
    code = completion
    if language == "python":
        for word in CODEGEEX_PYTHON_END_WORDS:
            if word in code:
                code = code[: code.rfind(word)]
        return code
    if language == "java":
        main = code.find("public static void main")
        if main != -1:
            code = code[:main] + "}"
        if "}" in code:
            code = code[: code.rfind("}")] + "}"
        if code.count("{") + 1 == code.count("}"):
            code += "\n}"
        return code
    if language == "go":
        for word in ("\n//", "\nfunc main("):
            if word in code:
                code = code[: code.rfind(word)]
    if language in BRACE_LANGUAGES:
        if "}" in code:
            code = code[: code.rfind("}")] + "}"
        return code
    raise ValueError(f"no stop rule for language {language!r}")


def postprocess(protocol: str, language: str, prompt: str, completion: str) -> str:
    """The text executed after `prompt`: CodeGeeX's cleanup, our function-end cut for the FIM
    protocol, or the code extracted from an instruct model's reply (EvalPlus's request, or Qwen's
    harness, whose stop strings cut the reply first)."""
    if protocol == "codegeex":
        return codegeex_cleanup(language, completion)
    if protocol == "fim":
        return truncate_completion(language, prompt, completion)
    if protocol == "instruct":
        from codegeex_lsp.bench.humaneval_x.instruct import completion_from_reply

        return completion_from_reply(completion)
    if protocol == "instruct-qwen":
        from codegeex_lsp.bench.humaneval_x.instruct import completion_from_reply, qwen_cut

        return completion_from_reply(qwen_cut(completion))
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
