"""Shared fixtures: tiny random models (one per architecture) built once per session."""

from __future__ import annotations

import os

import pytest

from tests.support.tiny import make_tiny_model_dir

# `make test` (and so CI) sets CODEGEEX_LSP_STRICT=1: there every part is installed first, so a skip
# can only mean a missing or broken part (a kernel build, llama.cpp, an editor, a toolchain). It
# fails instead of hiding. Only `gpu` tests may skip: no machine of this kind has a CUDA device.
STRICT = os.environ.get("CODEGEEX_LSP_STRICT") == "1"


def _fail_skip(report, where: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"{where} skipped under CODEGEEX_LSP_STRICT=1 (a missing part must fail): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if STRICT and report.skipped and item.get_closest_marker("gpu") is None and not hasattr(report, "wasxfail"):
        _fail_skip(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    report = (yield).get_result()
    if STRICT and report.skipped:
        _fail_skip(report, collector.nodeid)


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_dirs(tmp_path_factory):
    """Keep tests' shared workers and telemetry out of the user's real runtime and state dirs."""
    saved = {k: os.environ.get(k) for k in ("CODEGEEX_LSP_RUNTIME_DIR", "CODEGEEX_LSP_STATE")}
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    os.environ["CODEGEEX_LSP_RUNTIME_DIR"] = str(runtime)
    os.environ["CODEGEEX_LSP_STATE"] = str(tmp_path_factory.mktemp("state"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
