"""FIM-formatted calibration: masked whole lines of stdlib files, built into the model's own prompts."""

from __future__ import annotations

import random

from codegeex_lsp.bench import quant as bench_quant
from codegeex_lsp.engine.load import fim_calibration_ids, load_tokenizer
from codegeex_lsp.prompt import detect_format
from codegeex_lsp.quant.calibration import fim_cut, stdlib_calibration_sources, stdlib_fim_cuts

SOURCE = "".join(f"line {i}\n" if i % 3 else f"    indented {i}\n" for i in range(40))


def test_fim_cut_masks_whole_lines_from_the_indentation():
    rng = random.Random(3)
    for _ in range(50):
        cut = fim_cut(SOURCE, rng)
        assert cut is not None
        assert cut.prefix + cut.middle + cut.suffix == SOURCE
        assert cut.middle.endswith("\n") and not cut.middle[0].isspace()
        assert cut.prefix.endswith("\n") or cut.prefix.endswith("    ")
        assert 1 <= cut.middle.count("\n") <= 6


def test_fim_cut_bounds_and_degenerate_text():
    rng = random.Random(0)
    long = "x = 1\n" * 2000
    cut = fim_cut(long, rng, max_prefix_chars=100, max_suffix_chars=50)
    assert cut is not None and len(cut.prefix) <= 100 and len(cut.suffix) <= 50
    assert fim_cut("short\nfile\n", rng) is None  # no line after the first few to mask
    assert fim_cut("", rng) is None


def test_stdlib_fim_cuts_are_deterministic_and_come_from_the_files():
    first, again = stdlib_fim_cuts(4), stdlib_fim_cuts(4)
    assert first == again and len(first) == 4
    sources = [text for _path, text in stdlib_calibration_sources(4)]
    assert all(
        cut.middle and cut.prefix[-200:] + cut.middle in text
        for cut, text in zip(first, sources, strict=True)
    )


def test_fim_sequences_are_the_prompt_then_the_middle_then_the_end_token(tiny_glm_dir):
    tokenizer = load_tokenizer(tiny_glm_dir, trust_remote_code=False)
    sequences = fim_calibration_ids(tokenizer, "glm", 3, 256)
    assert len(sequences) == 3
    cuts = stdlib_fim_cuts(3)
    fmt = detect_format(tokenizer, "glm")
    end_ids = {tokenizer.convert_tokens_to_ids(token) for token in fmt.stop_tokens}
    for (ids, n_prompt), cut in zip(sequences, cuts, strict=True):
        assert 0 < n_prompt < len(ids) <= 256 + 64
        assert ids[-1] in end_ids
        middle = tokenizer.decode(ids[n_prompt:-1])
        assert middle and cut.middle.startswith(middle)
    assert fim_calibration_ids(tokenizer, "glm", 0, 256) == []


def test_held_out_fim_prompts_skip_the_calibration_files(tiny_glm_dir):
    tokenizer = load_tokenizer(tiny_glm_dir, trust_remote_code=False)
    held_out = bench_quant.held_out_fim(tokenizer, "glm", 2, 256)
    calibration = fim_calibration_ids(tokenizer, "glm", bench_quant.CALIBRATION_TEXTS, 256)
    assert len(held_out) == 2
    assert not any(ids == other for ids, _ in held_out for other, _ in calibration)


def test_int4_calibration_runs_the_fim_prompts(tiny_glm_dir):
    import torch

    from codegeex_lsp.config import EngineOptions
    from codegeex_lsp.engine.load import calibration_hessians, load_model

    loaded = load_model(EngineOptions(model=str(tiny_glm_dir), dtype="float32", quant="none", threads=1))
    messages: list[str] = []
    both = calibration_hessians(
        loaded.model, loaded.tokenizer, 2, 64, progress=messages.append, model_type=loaded.model_type, n_fim=2
    )
    plain = calibration_hessians(loaded.model, loaded.tokenizer, 2, 64, model_type=loaded.model_type, n_fim=0)
    assert messages[-1].endswith("4/4 sequences")
    assert both.keys() == plain.keys()
    assert all(not torch.equal(both[name], plain[name]) for name in both)
