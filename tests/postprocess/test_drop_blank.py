"""drop_blank: nothing but whitespace is discarded."""

from __future__ import annotations

import pytest

from tests.postprocess.cases import apply, make

FILTER = "drop_blank"


@pytest.mark.parametrize("text", ["", " ", "\n\n", "\t \n  "])
def test_blank_is_discarded(text):
    assert apply(FILTER, make("x = █\n", text)) is None


def test_text_stays():
    assert apply(FILTER, make("x = █\n", " 1 ")) == " 1 "
