"""Pre-packed bf16 linears: same numbers as F.linear, whole model included; on a CPU that oneDNN's bf16
packing refuses (AVX2-only hosts), the model keeps F.linear and serves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.engine.packed_linear import PackedLinear, pack_linears_, packing_available
from codegeex_lsp.prompt.types import Prompt

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


@pytest.mark.parametrize(
    ("out_f", "in_f", "rows", "bias"), [(1, 32, 1, False), (7, 96, 3, True), (130, 64, 16, True)]
)
def test_packed_equals_f_linear(out_f, in_f, rows, bias):
    torch.manual_seed(out_f)
    linear = nn.Linear(in_f, out_f, bias=bias).to(torch.bfloat16)
    x = torch.randn(1, rows, in_f).to(torch.bfloat16)
    if not packing_available():  # this CPU: the op refuses, which is what the probe saw
        with pytest.raises(RuntimeError, match="cpu support"):
            PackedLinear(linear)
        return
    with torch.inference_mode():
        assert torch.equal(PackedLinear(linear)(x), linear(x))


def test_model_packed_by_default_in_bf16_and_identical(tiny_model_factory):
    path = tiny_model_factory("qwen2")
    packed = load_model(EngineOptions(model=str(path), dtype="bfloat16", quant="none"))
    if not packing_available():  # this CPU: plain bf16 linears, and the model serves
        assert not any(isinstance(m, PackedLinear) for m in packed.model.modules())
        assert any(type(m) is nn.Linear and m.weight.dtype == torch.bfloat16 for m in packed.model.modules())
        prompt = Prompt("raw", "", tuple(packed.tokenizer.encode("def fibonacci(n):\n    ")), ())
        assert generate(packed.model, packed.tokenizer, prompt, CompletionOptions(max_tokens=4)).generated_tokens
        return
    assert any(isinstance(m, PackedLinear) for m in packed.model.modules())
    plain = load_model(EngineOptions(model=str(path), dtype="bfloat16", quant="none"))
    restored = 0
    for module in list(plain.model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, PackedLinear):
                lin = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
                restored += 1
                setattr(module, name, lin)
    assert restored  # the comparison below must run against plain F.linear
    fresh = load_model(EngineOptions(model=str(path), dtype="float32", quant="none"))
    for (_name, module), (_, ref) in zip(
        plain.model.named_modules(), fresh.model.named_modules(), strict=True
    ):
        if isinstance(module, nn.Linear):
            module.weight = nn.Parameter(ref.weight.detach().to(torch.bfloat16))
            module.bias = None if ref.bias is None else nn.Parameter(ref.bias.detach().to(torch.bfloat16))
    prompt = Prompt("raw", "", tuple(packed.tokenizer.encode("def fibonacci(n):\n    ")), ())
    a = generate(packed.model, packed.tokenizer, prompt, CompletionOptions(max_tokens=16))
    b = generate(plain.model, plain.tokenizer, prompt, CompletionOptions(max_tokens=16))
    assert a.token_ids == b.token_ids


def test_fp32_models_are_not_packed(tiny_glm_dir):
    loaded = load_model(EngineOptions(model=str(tiny_glm_dir), dtype="float32", quant="none"))
    assert pack_linears_(loaded.model) == 0
    assert not any(isinstance(m, PackedLinear) for m in loaded.model.modules())
