"""`--quant int4` in the engine: quantized once into the cache, reloaded from the packed checkpoint."""

from __future__ import annotations

import pytest

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.load import load_model
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
    saved = list((tmp_path / "int4").glob("*.safetensors"))
    assert len(saved) == 1
    mtime = saved[0].stat().st_mtime_ns
    second = load_model(opts)
    assert saved[0].stat().st_mtime_ns == mtime  # reused, not re-quantized
    prompt = Prompt("raw", "", tuple(first.tokenizer.encode("def fibonacci(n):\n    ")), ())
    a = generate(first.model, first.tokenizer, prompt, CompletionOptions(max_tokens=20))
    b = generate(second.model, second.tokenizer, prompt, CompletionOptions(max_tokens=20))
    assert a.token_ids == b.token_ids


def test_damaged_int4_checkpoint_is_rebuilt_with_a_clear_message(tiny_glm_dir, tmp_path, caplog):
    opts = EngineOptions(model=str(tiny_glm_dir), quant="int4", cache_dir=str(tmp_path))
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
    """scripts/experiments/with_recipe.py: other calibration counts reach the build (read at call
    time, not bound as defaults) and name their own cache file, so the default's is never reused."""
    import importlib.util
    from pathlib import Path

    from codegeex_lsp.engine import load

    for name in ("CALIBRATION_TEXTS", "CALIBRATION_FIM", "INT4_RECIPE"):
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
    counts = [int(m.split("calibration ")[1].split()[0]) for m in messages if "int4 build: calibration " in m]
    assert counts and max(counts) == 3 + 2, counts  # 3 snippets + 2 FIM prompts, not the default's
