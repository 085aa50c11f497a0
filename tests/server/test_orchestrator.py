"""`complete.complete_request`: the settings' budgets and the context's scope reach the generator
and post-processing; a generator's raw text is healed and post-processed once."""

from __future__ import annotations

import dataclasses

from codegeex_lsp.complete import complete_request, plan_request
from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.context import Document, build_context
from codegeex_lsp.prompt.budget import budget_for, fit_to_context
from codegeex_lsp.prompt.types import FimRequest, Reference
from codegeex_lsp.protocol import Completion
from codegeex_lsp.server.completion import completion_options
from codegeex_lsp.server.options import parse_options

DOCUMENT = "class Calc:\n\n"
RAW = "def sub(self, a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n"


class Recorder:
    """A generator answering `raw` and keeping what it was asked."""

    def __init__(self, raw: str, finish: str = "length") -> None:
        self.raw, self.finish = raw, finish
        self.calls: list[tuple[FimRequest, CompletionOptions, object]] = []

    def generate(self, request, options, *, cancel=None, cache_key=None) -> Completion:
        self.calls.append((request, options, cache_key))
        return Completion("", (), (self.raw,), "m", "f", request.mode, 3, 9, self.finish)


def context():
    doc = Document("file:///calc.py", DOCUMENT, "python")
    return build_context(doc, doc.position_at(len("class Calc:\n")))


def test_reference_tokens_setting_reaches_the_budget():
    options, warnings = parse_options({"context": {"referenceTokens": 100}})
    assert not warnings
    opts = completion_options(options, "LINE")
    assert opts.reference_tokens == 100 and budget_for(opts).reference_tokens == 100
    off, _ = parse_options({"context": {"references": False}})
    assert completion_options(off, "LINE").reference_tokens == 0


def test_fit_to_context_prices_references_at_the_setting():
    fim = FimRequest(prefix="p", references=(Reference("a.py", "def a(): pass\n"),))
    # 1024 context, 64 new tokens: 896 left; 512 reference tokens leave less than half -> dropped,
    # 100 fit.
    dropped, big = fit_to_context(fim, CompletionOptions(max_tokens=64, reference_tokens=512), 1024)
    kept, small = fit_to_context(fim, CompletionOptions(max_tokens=64, reference_tokens=100), 1024)
    assert dropped.references == () and big.reference_tokens == 0
    assert kept.references == fim.references and small.reference_tokens == 100
    assert small.prefix_tokens + small.suffix_tokens + 100 + 64 <= 1024


def test_scope_reaches_the_generator_and_post_processing_once():
    ctx = context()
    assert ctx.mode == "BLOCK" and ctx.scope is not None and ctx.scope.name == "Calc"
    recorder = Recorder(RAW)
    opts = CompletionOptions(max_tokens=32, reference_tokens=64)
    result = complete_request(ctx, opts, recorder, n_context=4096, request_id="7", cache_key=ctx.uri)
    ((request, got_opts, key),) = recorder.calls
    assert request.scope == ctx.scope and request.mode == "BLOCK" and key == ctx.uri
    assert got_opts.reference_tokens == 64 and got_opts.max_tokens == 32
    assert result.raw == (RAW,)
    assert result.completion == "def sub(self, a, b):\n    return a - b"  # cut at the class's end
    assert result.candidates == (result.completion,)


def test_plan_bounds_the_text_before_tokenizing():
    big = "x = 1\n" * 50_000
    doc = Document("file:///big.py", big + "def f():\n    \n", "python")
    ctx = build_context(doc, doc.position_at(len(big) + len("def f():\n    ")))
    request, opts = plan_request(ctx, CompletionOptions(prefix_tokens=100), 4096)
    assert len(request.prefix) < 10_000 and request.prefix.endswith("def f():\n    ")
    assert opts.prefix_tokens == 100


def test_a_cancelled_generation_gives_no_suggestion():
    result = complete_request(context(), CompletionOptions(), Recorder(RAW, "cancelled"), n_context=4096)
    assert result.finish_reason == "cancelled" and result.completion == "" and result.candidates == ()


def test_trailing_whitespace_is_healed_once():
    doc = Document("file:///f.py", "def f(x):\n    return \n", "python")
    ctx = dataclasses.replace(build_context(doc, doc.position_at(len("def f(x):\n    return "))), mode="LINE")
    result = complete_request(ctx, CompletionOptions(), Recorder(" x + 1\n"), n_context=4096)
    assert result.completion == "x + 1"
