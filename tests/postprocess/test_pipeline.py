"""The candidate, the pipeline's order and its guarantees."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codegeex_lsp.postprocess import DEFAULT_PIPELINE, run_pipeline
from codegeex_lsp.postprocess._text import before_cursor_line, line_after_cursor, line_before_cursor
from codegeex_lsp.prompt.types import FimRequest
from tests.postprocess.cases import golden_cases, make

CASES = golden_cases()


def test_the_lines_around_the_cursor():
    _text, request = make("a\n  b = █ + 1\nc\n", "x")
    assert line_before_cursor(request.prefix) == "  b = "
    assert line_after_cursor(request.suffix) == " + 1"
    assert before_cursor_line(request.prefix) == "a\n"
    assert line_before_cursor("") == "" and line_after_cursor("") == ""


def test_unknown_modes_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        run_pipeline("", FimRequest("", mode="WORD"))  # type: ignore[arg-type]


def test_the_order_is_data():
    assert [f.__name__ for f in DEFAULT_PIPELINE] == [
        "cut_chat_runoff",
        "remove_line_ends_with_repetition",
        "remove_repetitive_blocks",
        "remove_repetitive_lines",
        "limit_scope",
        "cut_suffix_overlap",
        "trim_closing_brackets",
        "trim_unparsable_tail",
        "trim_space",
        "drop_duplicated",
        "drop_blank",
    ]


def test_a_discard_stops_the_pipeline():
    seen = []

    def record(text, _request):
        seen.append(text)
        return text

    assert run_pipeline(*make("█", "x"), filters=(record, lambda _t, _r: None, record)) is None
    assert seen == ["x"]


def test_every_filter_reads_the_same_request_and_the_previous_text():
    seen = []

    def step(suffix):
        def run(text, request):
            seen.append((text, request))
            return text + suffix

        return run

    text, request = make("keep █ this", "x")
    assert run_pipeline(text, request, filters=(step("y"), step("z"))) == "xyz"
    assert seen == [("x", request), ("xy", request)]
    assert all(r is request for _, r in seen)


@pytest.mark.parametrize("step", DEFAULT_PIPELINE, ids=lambda f: f.__name__)
def test_filters_return_text_or_discard(step):
    for case in CASES:
        result = step(case.text, case.request)
        assert result is None or isinstance(result, str), case.name


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_pipeline_is_stable_on_its_own_output(case):
    once = run_pipeline(case.text, case.request)
    if once is not None:
        assert run_pipeline(once, case.request) == once


def test_the_stage_does_not_import_torch():
    code = "import sys, codegeex_lsp.postprocess; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_block_above_code_keeps_that_code_on_its_own_line():
    """The whole pipeline at a multi-line hole (cursor at column 0 of a line of code): the model's
    repeat of that line is cut and the suggestion ends with the break the document needs."""
    raw, request = make("def f(xs):\n    out = []\n█    depth = 0\n    return out\n", "", mode="BLOCK")
    raw = "    cur = []\n    depth = 0\n    return out\n"
    text = run_pipeline(raw, request)
    assert text == "    cur = []\n"
    assert (
        request.prefix + text + request.suffix
        == "def f(xs):\n    out = []\n    cur = []\n    depth = 0\n    return out\n"
    )
