"""The benchmark data ships inside the package: every file loads from the default location."""

from __future__ import annotations

from pathlib import Path

import codegeex_lsp
from codegeex_lsp.bench.humaneval_x.dataset import (
    DEFAULT_DATA_DIR,
    LANGUAGES,
    data_dir,
    load_tasks,
    sample_tasks,
)

PACKAGE_ROOT = Path(codegeex_lsp.__file__).resolve().parent


def test_default_data_dir_is_inside_the_package(monkeypatch):
    monkeypatch.delenv("CODEGEEX_HUMANEVALX", raising=False)
    assert data_dir().resolve().is_relative_to(PACKAGE_ROOT)
    assert DEFAULT_DATA_DIR.name == "humanevalx"
    assert "Apache License" in (DEFAULT_DATA_DIR / "LICENSE").read_text()
    assert "Known-bad tasks" in (DEFAULT_DATA_DIR / "README.md").read_text()


def test_every_language_loads_164_tasks_from_the_package(monkeypatch):
    monkeypatch.delenv("CODEGEEX_HUMANEVALX", raising=False)
    for language in LANGUAGES:
        tasks = load_tasks(language)
        assert [task.number for task in tasks] == list(range(164)), language


def test_environment_and_argument_override_the_package_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("CODEGEEX_HUMANEVALX", str(tmp_path))
    assert data_dir() == tmp_path
    assert data_dir("/elsewhere") == Path("/elsewhere")


def test_sample_is_seeded_the_same_in_every_language_and_not_the_first_n():
    python = sample_tasks(load_tasks("python"), 5, seed=1234)
    java = sample_tasks(load_tasks("java"), 5, seed=1234)
    numbers = [task.number for task in python]
    assert numbers == sorted(numbers) and numbers != list(range(5))
    assert [task.number for task in java] == numbers
    assert [task.number for task in sample_tasks(load_tasks("python"), 5, seed=7)] != numbers
    assert {t.number for t in sample_tasks(load_tasks("python"), 3, seed=1234)} <= set(numbers)
