"""`--quant int4` in the engine: quantized once into the cache, reloaded from the packed checkpoint."""

from __future__ import annotations

from dataclasses import replace

import pytest

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.load import INT4_LADDER, int4_missing, load_model, quant_label
from codegeex_lsp.errors import ModelError
from codegeex_lsp.prompt.types import Prompt
from codegeex_lsp.quant import QuantEmbedding, QuantLinear


@pytest.mark.parametrize("arch", ["qwen2", "glm"])
def test_int4_quantizes_once_and_reloads_identically(tiny_model_factory, tmp_path, arch):
    opts = EngineOptions(model=str(tiny_model_factory(arch)), quant="int4", cache_dir=str(tmp_path))
    first = load_model(opts)
    linears = [m for m in first.model.modules() if isinstance(m, QuantLinear)]
    assert len(linears) == 2 * 4 + 1  # wqkv, wo, w_gate_up, w_down per layer + the lm head
    assert any(isinstance(m, QuantEmbedding) for m in first.model.modules())
    saved = sorted((tmp_path / "int4").glob("*.safetensors"))
    assert len(saved) == len(INT4_LADDER)  # every rung built once ("all", the default)
    assert first.quant == quant_label("int4") == f"int4 ({INT4_LADDER[-1].name})"  # the top serves
    mtimes = [path.stat().st_mtime_ns for path in saved]
    second = load_model(opts)
    assert [path.stat().st_mtime_ns for path in saved] == mtimes  # reused, not re-quantized
    prompt = Prompt("raw", "", tuple(first.tokenizer.encode("def fibonacci(n):\n    ")), ())
    a = generate(first.model, first.tokenizer, prompt, CompletionOptions(max_tokens=20))
    b = generate(second.model, second.tokenizer, prompt, CompletionOptions(max_tokens=20))
    assert a.token_ids == b.token_ids


def test_first_builds_only_the_first_rung_and_loads_the_highest_built(tiny_glm_dir, tmp_path):
    """`int4_build="first"` (one-shot commands, and what the server loads while it refines): the
    first rung when nothing is built, never a build when a rung is there, and the highest one."""
    opts = EngineOptions(model=str(tiny_glm_dir), quant="int4", cache_dir=str(tmp_path), int4_build="first")
    assert int4_missing(opts) == list(INT4_LADDER)
    first = load_model(opts)
    assert first.quant == f"int4 ({INT4_LADDER[0].name})"
    assert [p.name.endswith(f"-{INT4_LADDER[0].name}.safetensors") for p in (tmp_path / "int4").glob("*.safetensors")] == [True]
    assert int4_missing(opts) == list(INT4_LADDER[1:])
    messages: list[str] = []
    assert load_model(opts, messages.append).quant == first.quant
    assert not any("quantizing" in m for m in messages)  # a rung is built: "first" builds nothing
    top = load_model(replace(opts, int4_build="all"), messages.append)  # builds the rest only
    assert top.quant == quant_label("int4") and int4_missing(opts) == []
    assert sum(f"({INT4_LADDER[0].name})" in m and "quantizing" in m for m in messages) == 0
    assert load_model(opts).quant == top.quant  # "first" now loads the highest rung built


def test_damaged_int4_checkpoint_is_rebuilt_with_a_clear_message(tiny_glm_dir, tmp_path, caplog):
    opts = EngineOptions(model=str(tiny_glm_dir), quant="int4", cache_dir=str(tmp_path), int4_build="first")
    load_model(opts)
    (path,) = (tmp_path / "int4").glob("*.safetensors")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        load_model(opts)
    assert any("int4 checkpoint unusable, rebuilding it" in r.getMessage() and "sha256" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_model(opts)  # the rebuilt checkpoint passes its checks: no second rebuild
    assert not [r for r in caplog.records if "unusable" in r.getMessage()]


def test_unknown_quant_mode(tiny_glm_dir, tmp_path):
    with pytest.raises(ModelError, match="quantization 'int3' is not supported"):
        load_model(EngineOptions(model=str(tiny_glm_dir), quant="int3", cache_dir=str(tmp_path)))


def test_a_recipe_set_for_one_process_builds_its_own_checkpoint(tiny_glm_dir, tmp_path, monkeypatch):
    """scripts/experiments/with_recipe.py: another recipe's calibration counts reach the build and
    name their own cache file, so the default's is never reused."""
    import importlib.util
    from pathlib import Path

    from codegeex_lsp.engine import load

    for name in ("INT4_LADDER", "INT4_RECIPE"):
        monkeypatch.setattr(load, name, getattr(load, name))  # restored after the test
    script = Path(__file__).parents[2] / "scripts" / "experiments" / "with_recipe.py"
    spec = importlib.util.spec_from_file_location("with_recipe", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recipe = module.set_recipe(texts=3, fim=2)
    assert "-ml3-f2-" in recipe and recipe == load.INT4_RECIPE
    messages: list[str] = []
    loaded = load_model(EngineOptions(model=str(tiny_glm_dir), quant="int4", cache_dir=str(tmp_path)), messages.append)
    (path,) = (tmp_path / "int4").glob("*.safetensors")
    assert path.name.endswith(f"-{recipe}.safetensors")
    assert loaded.quant == f"int4 ({recipe})"
    assert len(list((tmp_path / "int4").glob("*.safetensors"))) == 1  # the only rung
    counts = [int(m.split("calibration ")[1].split()[0]) for m in messages if "int4 build: calibration " in m]
    assert counts and max(counts) == 3 + 2, counts  # 3 snippets + 2 FIM prompts, not the default's
