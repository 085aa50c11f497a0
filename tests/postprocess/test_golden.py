"""Golden cases: realistic raw outputs of an instruct model used for FIM, and what must be shown.

Each case also names the filters it exercises: taking any of them out of DEFAULT_PIPELINE must change
the outcome, so no case passes by accident of another filter. An entry "a+b" names filters that back
each other up (a duplicated closing brace is cut by `cut_suffix_overlap` and, failing that, by
`trim_unparsable_tail`): the outcome must change when both are taken out. Every filter must also
have a case where it alone decides.
"""

from __future__ import annotations

import pytest

from codegeex_lsp.postprocess import DEFAULT_PIPELINE, run_pipeline
from tests.postprocess.cases import golden_cases, render

CASES = golden_cases()
NAMES = {f.__name__ for f in DEFAULT_PIPELINE}
LANGUAGES = {"python", "javascript", "go", "rust", "cpp", "java"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden(case):
    assert render(case.request, run_pipeline(case.text, case.request)) == case.expected, case.description


@pytest.mark.parametrize(
    ("case", "name"),
    [(case, name) for case in CASES for name in case.exercises],
    ids=lambda value: value if isinstance(value, str) else value.name,
)
def test_golden_needs_the_filters_it_names(case, name):
    removed = set(name.split("+"))
    assert removed <= NAMES, f"unknown filter in {name!r}"
    filters = [f for f in DEFAULT_PIPELINE if f.__name__ not in removed]
    assert render(case.request, run_pipeline(case.text, case.request, filters)) != case.expected


def test_every_case_names_a_filter_and_every_filter_has_a_case():
    assert all(case.exercises for case in CASES), [c.name for c in CASES if not c.exercises]
    decided_alone = {name for case in CASES for name in case.exercises if "+" not in name}
    assert decided_alone >= NAMES, NAMES - decided_alone


def test_golden_cases_cover_the_languages_and_both_modes():
    assert {case.request.language for case in CASES} >= LANGUAGES
    assert {"LINE", "BLOCK"} == {case.request.mode for case in CASES}
    assert any(case.expected == "discard" for case in CASES)
