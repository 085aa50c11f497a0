"""The shipped calibration corpus: six languages, licensed, deterministic, never benchmark data."""

from __future__ import annotations

import json

from codegeex_lsp.bench import quant as bench_quant
from codegeex_lsp.quant.calibration import (
    CORPUS_DIR,
    CORPUS_LANGUAGES,
    corpus_calibration_texts,
    corpus_files,
    corpus_fim_cuts,
)

PERMISSIVE = {"PSF-2.0", "BSD-3-Clause", "MIT", "ISC", "BSD-2-Clause", "Apache-2.0", "MIT OR Apache-2.0"}


def test_manifest_records_origin_license_and_notice_of_every_file():
    manifest = json.loads((CORPUS_DIR / "MANIFEST.json").read_text())
    listed = {entry["file"] for entry in manifest["files"]}
    on_disk = {p.relative_to(CORPUS_DIR).as_posix() for p in CORPUS_DIR.glob("*/*") if p.parent.name != "NOTICES"}
    assert listed == on_disk
    for entry in manifest["files"]:
        assert entry["license"] in PERMISSIVE, entry
        assert entry["origin"] and entry["language"] in CORPUS_LANGUAGES
        assert (CORPUS_DIR / entry["notice"]).read_text().strip(), entry["notice"]
    size = sum(p.stat().st_size for p in CORPUS_DIR.rglob("*") if p.is_file())
    assert size < 400_000  # a small corpus: a few hundred KB at most


def test_corpus_covers_all_six_languages_alternately():
    files = corpus_files()
    assert {f.language for f in files} == set(CORPUS_LANGUAGES)
    assert all(sum(f.language == lang for f in files) >= 6 for lang in CORPUS_LANGUAGES)
    assert [f.language for f in files[:6]] == list(CORPUS_LANGUAGES)  # any prefix covers them evenly
    assert [f.language for f in files[6:12]] == list(CORPUS_LANGUAGES)


def test_snippets_and_fim_cuts_are_deterministic_slices_of_corpus_files():
    texts = corpus_calibration_texts(12, max_chars=1500)
    assert texts == corpus_calibration_texts(12, max_chars=1500)
    assert {lang for lang, _ in texts} == set(CORPUS_LANGUAGES)
    by_lang = {}
    for f in corpus_files():
        by_lang.setdefault(f.language, []).append(f.text)
    assert all(any(snippet in text for text in by_lang[lang]) for lang, snippet in texts)
    cuts = corpus_fim_cuts(24)
    assert cuts == corpus_fim_cuts(24) and len(cuts) == 24
    assert {lang for lang, _ in cuts} == set(CORPUS_LANGUAGES)
    for lang, cut in cuts:
        assert any(cut.prefix + cut.middle in text for text in by_lang[lang])


def test_no_benchmark_task_in_the_corpus():
    text = "\n".join(f.text for f in corpus_files())
    # HumanEval/HumanEval-X entry points (tasks 0, 1, 2 and the last one)
    for name in ("has_close_elements", "separate_paren_groups", "truncate_number", "generate_integers"):
        assert name not in text


def test_bench_quant_held_out_texts_are_not_in_the_corpus():
    corpus = [f.text for f in corpus_files() if f.language == "python"]
    held_out = bench_quant.held_out_texts(8, max_chars=800)
    assert len(held_out) == 8
    assert not any(snippet in text for snippet in held_out for text in corpus)
