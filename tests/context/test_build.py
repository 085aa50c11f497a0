"""build_context and to_fim_request: the frozen hand-off to the prompt stage."""

from __future__ import annotations

import dataclasses
import random

import pytest

from codegeex_lsp.context import (
    CompletionContext,
    ContentChange,
    ContextOptions,
    Position,
    Range,
    build_context,
    to_fim_request,
)
from codegeex_lsp.prompt.types import FimRequest

from .helpers import make_doc

UTIL = "def helper(a, b):\n    return a + b\n"


def test_block_context_and_fim_request() -> None:
    util = make_doc(UTIL, "python", name="util.py")
    text = "def run(x):\n    y = helper(x, 1)\n    \n    return y\n\nrun(1)\n"
    main = make_doc(text, "python", name="m.py")
    ctx = build_context(main, Position(2, 4), [main, util], ContextOptions(root="/work-tests"))
    assert (ctx.mode, ctx.reason) == ("LINE", "statement")
    assert ctx.prefix == "def run(x):\n    y = helper(x, 1)\n    "
    assert ctx.suffix == "\n    return y\n\nrun(1)\n"
    assert ctx.path == "m.py"
    assert ctx.scope is not None and ctx.scope.name == "run"
    assert ctx.scope_end_in_suffix == len("\n    return y")
    request = to_fim_request(ctx, repo_name="demo")
    assert request == FimRequest(
        prefix=ctx.prefix, suffix=ctx.suffix, language="python", path="m.py", mode="LINE",
        references=ctx.references, repo_name="demo", scope=ctx.scope,
    )
    assert [r.path for r in request.references] == ["util.py"]


def test_empty_body_is_block_and_language_id_is_canonical() -> None:
    doc = make_doc("function f() {\n  \n}\n", "jsx", name="a.jsx")
    ctx = build_context(doc, Position(1, 2))
    assert ctx.mode == "BLOCK"
    assert ctx.language.language_id == "javascriptreact" and ctx.language.name == "JavaScript"
    assert to_fim_request(ctx).language == "javascriptreact"


def test_none_context_has_no_references_and_no_fim_request() -> None:
    util = make_doc(UTIL, "python", name="util.py")
    doc = make_doc("x = helper(1, 2)\n", "python", name="m.py")
    ctx = build_context(doc, Position(0, 6), [util])
    assert ctx.mode == "NONE" and ctx.references == ()
    with pytest.raises(ValueError, match="no completion wanted"):
        to_fim_request(ctx)


def test_context_is_a_frozen_snapshot() -> None:
    doc = make_doc("a = 1\nb = \n", "python")
    ctx = build_context(doc, Position(1, 4))
    doc.apply_change(ContentChange("zzz\n", Range(Position(0, 0), Position(0, 0))))
    assert ctx.prefix == "a = 1\nb = " and ctx.position == Position(1, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.mode = "BLOCK"  # type: ignore[misc]
    assert isinstance(ctx, CompletionContext)


def test_position_is_clamped_and_encoded() -> None:
    doc = make_doc("s = '😀'\n", "python", encoding="utf-16")
    ctx = build_context(doc, Position(0, 99))
    assert ctx.prefix == "s = '😀'" and ctx.position == Position(0, 8)
    assert ctx.cursor_byte == len("s = '😀'".encode())


def test_references_can_be_switched_off() -> None:
    util = make_doc(UTIL, "python", name="util.py")
    doc = make_doc("helper(1, 2)\n", "python")
    assert build_context(doc, Position(1, 0), [util]).references
    assert build_context(doc, Position(1, 0), [util], ContextOptions(references=False)).references == ()


JUNK_LANGUAGES = ["python", "typescriptreact", "java", "c", "cpp", "go", "rust", "plaintext"]


@pytest.mark.parametrize("language_id", JUNK_LANGUAGES)
def test_junk_documents_never_raise(language_id: str) -> None:
    rng = random.Random(language_id)
    junk = bytes(rng.randrange(256) for _ in range(2000)).decode("utf-8", errors="surrogateescape")
    doc = make_doc(junk + "\x00{\n  \n}\n\ud800", language_id, name="junk")
    other = make_doc(junk[::-1], language_id, name="other")
    for _ in range(40):
        position = Position(rng.randrange(doc.lines.n_lines + 2), rng.randrange(40))
        ctx = build_context(doc, position, [other])
        assert ctx.prefix + ctx.suffix == doc.text
        assert ctx.mode in ("NONE", "LINE", "BLOCK")
