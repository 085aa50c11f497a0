"""Shared fixtures: tiny random models (one per architecture) built once per session."""

from __future__ import annotations

import pytest

from tests.support.tiny import make_tiny_model_dir


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory):
    made: dict[str, object] = {}

    def make(arch: str = "glm"):
        if arch not in made:
            made[arch] = make_tiny_model_dir(tmp_path_factory.mktemp(f"tiny-{arch}"), arch)
        return made[arch]

    return make


@pytest.fixture(scope="session")
def tiny_glm_dir(tiny_model_factory):
    return tiny_model_factory("glm")
