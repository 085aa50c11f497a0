"""The candidate, the pipeline's order and its guarantees."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from codegeex_lsp.postprocess import DEFAULT_PIPELINE, Candidate, run_pipeline
from codegeex_lsp.prompt.types import FimRequest
from tests.postprocess.cases import golden_cases, make

CASES = golden_cases()


def test_candidate_is_frozen_and_with_text_keeps_the_rest():
    candidate = make("x = █\ny = 2\n", "1", "LINE", "python")
    with pytest.raises(dataclasses.FrozenInstanceError):
        candidate.text = "2"  # type: ignore[misc]
    changed = candidate.with_text("2")
    assert changed.text == "2" and candidate.text == "1"
    assert dataclasses.replace(changed, text="1") == candidate
    assert candidate.with_text("1") is candidate


def test_candidate_lines_around_the_cursor():
    candidate = make("a\n  b = █ + 1\nc\n", "x")
    assert candidate.current_line_prefix == "  b = "
    assert candidate.current_line_suffix == " + 1"
    assert candidate.prefix_before_line == "a\n"
    assert make("█", "x").current_line_prefix == ""


def test_candidate_rejects_unknown_modes():
    with pytest.raises(ValueError, match="mode"):
        Candidate(FimRequest("", mode="WORD"), "")  # type: ignore[arg-type]


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

    def record(candidate):
        seen.append(candidate.text)
        return candidate

    assert run_pipeline(make("█", "x"), filters=(record, lambda c: None, record)) is None
    assert seen == ["x"]


def test_a_filter_cannot_change_the_document():
    def rogue(candidate):
        request = dataclasses.replace(candidate.request, prefix="", suffix="", mode="BLOCK")
        return dataclasses.replace(candidate, request=request, text="y")

    original = make("keep █ this", "x")
    result = run_pipeline(original, filters=(rogue,))
    assert result == original.with_text("y")


@pytest.mark.parametrize("step", DEFAULT_PIPELINE, ids=lambda f: f.__name__)
def test_filters_only_edit_the_suggestion(step):
    for case in CASES:
        result = step(case.candidate)
        if result is not None:
            assert dataclasses.replace(result, text=case.candidate.text) == case.candidate, case.name


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_pipeline_is_stable_on_its_own_output(case):
    once = run_pipeline(case.candidate)
    if once is not None:
        assert run_pipeline(once) == once


def test_the_stage_does_not_import_torch():
    code = "import sys, codegeex_lsp.postprocess; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
