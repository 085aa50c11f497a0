"""Fixtures of the editor end-to-end tests: the readable tiny model and the artifacts folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.editors import ARTIFACTS
from tests.e2e.models import make_readable_tiny_model_dir


@pytest.fixture(scope="session")
def readable_model(tmp_path_factory) -> Path:
    return make_readable_tiny_model_dir(tmp_path_factory.mktemp("tiny-readable"))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
