"""QuantLinear / QuantEmbedding and whole-model conversion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from codegeex_lsp.quant import (
    QuantEmbedding,
    QuantLinear,
    convert_for_runtime,
    create_quantized_state_dict,
    fold_act_scale_into_norm_,
    quantize_model_,
)
from codegeex_lsp.quant import reference as R
from codegeex_lsp.quant.calibration import collect_linear_inputs
from codegeex_lsp.quant.linear import specs_of
from codegeex_lsp.quant.packing import dequantize_packed, unpack_int4
from tests.quant.conftest import randn

# Every available kernel vs the dequantized fp32 linear. `ref` is exact up to summation order; the
# CPU kernel rounds activations to int8 per group (see test_kernels_cpu for the elementwise bound).
MODULE_RTOL = {"ref": 1e-5, "cpp": 1.5e-2}


def _kernels() -> list[str]:
    from codegeex_lsp.quant import ops

    return ["ref", "cpp"] if ops.extension() is not None else ["ref"]


class TinyLM(nn.Module):
    """The engine's module shapes in miniature: fused qkv with bias, tied embedding / lm head."""

    def __init__(self, vocab: int = 101, dim: int = 64, hidden: int = 160) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.norm = nn.RMSNorm(dim)
        self.wqkv = nn.Linear(dim, 96, bias=True)
        self.wo = nn.Linear(96, dim, bias=False)
        self.w_gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)
        self.output = nn.Linear(dim, vocab, bias=False)
        self.output.weight = self.tok_embeddings.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.tok_embeddings(ids)  # [B, S, D]
        h = h + self.wo(self.wqkv(self.norm(h)))
        gate, up = self.w_gate_up(self.norm(h)).chunk(2, dim=-1)
        h = h + self.w_down(nn.functional.silu(gate) * up)
        return self.output(h)  # [B, S, V]


def _tiny(seed: int = 0) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM().eval()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("kernel", _kernels())
@pytest.mark.parametrize(("mode", "g"), [("sym", 32), ("asym", 64), ("rowwise", 32), ("sym", 128)])
def test_quant_linear_matches_dequantized_linear(kernel: str, mode: str, g: int) -> None:
    linear = nn.Linear(256, 67, bias=True)
    module = QuantLinear.from_linear(linear, mode, g, kernel=kernel)
    x = randn(3, 5, 256, seed=1)
    with torch.inference_mode():
        y = module(x)
    want = nn.functional.linear(x, module.dequantize(), module.bias)
    assert y.shape == (3, 5, 67)
    assert _rel(y, want) <= MODULE_RTOL[kernel]
    w_err = _rel(module.dequantize(), linear.weight.detach())
    assert w_err <= 0.16, "quantized weight far from the float one"


@pytest.mark.parametrize("kernel", _kernels())
def test_quant_linear_bf16_and_grad_free(kernel: str) -> None:
    linear = nn.Linear(128, 9).to(torch.bfloat16)
    module = QuantLinear.from_linear(linear, "sym", 32, kernel=kernel)
    x = randn(2, 128, seed=2).to(torch.bfloat16)
    with torch.inference_mode():
        y = module(x)
    assert y.dtype == torch.bfloat16
    assert _rel(y, nn.functional.linear(x.float(), module.dequantize(), module.bias)) <= 2e-2


def test_quant_embedding_rows_are_dequantized_rows() -> None:
    emb = nn.Embedding(50, 96)
    module = QuantEmbedding.from_embedding(emb, "asym", 32)
    ids = torch.tensor([[0, 49, 7], [7, 3, 3]])
    table = R.dequantize_groupwise(R.quantize(emb.weight.detach(), "asym", 32))
    for kernel in _kernels():
        module.kernel = kernel
        with torch.inference_mode():
            out = module(ids)
        assert out.shape == (2, 3, 96) and torch.equal(out, table[ids])


@pytest.mark.parametrize("kernel", _kernels())
def test_quantize_model_in_place_ties_and_inference_mode(kernel: str) -> None:
    model = _tiny()
    ids = torch.tensor([[1, 5, 9, 100]])
    with torch.inference_mode():
        y0 = model(ids)
    quantize_model_(model, "sym", 32, kernel=kernel)
    kinds = {name: type(m).__name__ for name, m in model.named_children()}
    assert kinds["wqkv"] == kinds["output"] == "QuantLinear" and kinds["tok_embeddings"] == "QuantEmbedding"
    assert model.output.packed is model.tok_embeddings.packed  # tied: stored once
    assert model.wqkv.bias is not None
    with torch.inference_mode():
        y1 = model(ids)
    assert _rel(y1, y0) <= 0.25
    specs = {s.name: s for s in specs_of(model)}
    assert specs["output"].tied_to == "tok_embeddings"


def test_quantize_model_without_embeddings_and_group_size_fit() -> None:
    model = _tiny()
    model.wo = nn.Linear(96, 64)  # 96 inputs: not a multiple of 64 -> falls back to group size 32
    quantize_model_(model, "asym", 64, include_embeddings=False)
    assert isinstance(model.tok_embeddings, nn.Embedding)
    assert model.wo.group_size == 32 and model.wqkv.group_size == 64


def test_two_step_conversion_on_meta_skeleton() -> None:
    model = _tiny()
    state, specs = create_quantized_state_dict(model, "asym", 32)
    assert "wqkv.packed" in state and "wqkv.weight" not in state
    with torch.device("meta"):
        skeleton = TinyLM()
    convert_for_runtime(skeleton, specs)
    assert skeleton.wqkv.packed.device.type == "meta"
    skeleton.load_state_dict(state, assign=True, strict=True)
    ids = torch.tensor([[3, 4]])
    quantize_model_(model, "asym", 32)
    with torch.inference_mode():
        assert torch.equal(skeleton(ids), model(ids))


def test_awq_model_and_folding() -> None:
    model = _tiny()
    ids = torch.randint(0, 101, (4, 16), generator=torch.Generator().manual_seed(0))
    calibration = collect_linear_inputs(model, [ids])
    assert calibration["wqkv"].shape == (64, 64) and calibration["w_down"].shape == (64, 160)
    with torch.inference_mode():
        y0 = model(ids)
    quantize_model_(model, "awq", 32, calibration=calibration)
    assert model.wqkv.act_scale is not None and model.output.act_scale is None  # tied head: plain asym
    with torch.inference_mode():
        y1 = model(ids)
    norm = nn.RMSNorm(64)
    x = randn(3, 64, seed=9)
    with torch.inference_mode():
        before = model.wqkv(norm(x))
        fold_act_scale_into_norm_(norm, model.wqkv)
        after = model.wqkv(norm(x))
    assert model.wqkv.act_scale is None
    assert _rel(after, before) <= MODULE_RTOL["cpp"]
    assert _rel(y1, y0) <= 0.25
    with pytest.raises(ValueError, match="calibration"):
        quantize_model_(_tiny(), "awq", 32)


@pytest.mark.parametrize("kernel", _kernels())
def test_residual_plane_runs_like_its_dequantized_sum_and_cuts_the_error(kernel: str) -> None:
    model = _tiny(3)
    w_float = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    plain = quantize_model_(_tiny(3), "asym", 32, kernel=kernel)
    quantize_model_(model, "asym", 32, kernel=kernel, residual=lambda name: name in ("w_gate_up", "output"))
    specs = {s.name: s for s in specs_of(model)}
    assert specs["w_gate_up"].residual and not specs["wo"].residual
    assert specs["w_gate_up"].mode == "int8" and specs["wo"].mode == "asym"
    high = unpack_int4(model.w_gate_up.packed, 64, 32)
    low = unpack_int4(model.w_gate_up.residual, 64, 32)
    assert torch.equal(high.scale, low.scale * 16), "8-bit codes: high nibbles at 16x the low ones' scale"
    assert not specs["output"].residual, "a tied lm head shares the embedding's single plane"
    gate_up = model.w_gate_up
    x = randn(2, 3, 64, seed=4)
    with torch.inference_mode():
        y = gate_up(x)
    assert _rel(y, nn.functional.linear(x, gate_up.dequantize())) <= MODULE_RTOL[kernel]
    two_planes = _rel(gate_up.dequantize(), w_float["w_gate_up"])
    one_plane = _rel(plain.w_gate_up.dequantize(), w_float["w_gate_up"])
    assert two_planes < one_plane / 8, (two_planes, one_plane)  # about 4 more bits
    assert torch.equal(model.wo.packed, plain.wo.packed)


def test_untied_embedding_residual_plane_rows() -> None:
    model = _tiny(5)
    model.output.weight = nn.Parameter(model.output.weight.detach().clone() * 0.5)  # untie
    table = model.tok_embeddings.weight.detach().clone()
    quantize_model_(model, "asym", 32, residual=lambda name: name == "tok_embeddings")
    emb = model.tok_embeddings
    assert emb.residual is not None and model.output.residual is None
    ids = torch.tensor([[0, 9, 100]])
    full = dequantize_packed(emb.packed, 64, 32) + dequantize_packed(emb.residual, 64, 32)
    with torch.inference_mode():
        got = emb(ids)
    assert torch.allclose(got[0], full[ids[0]], atol=1e-6)
    assert _rel(got[0], table[ids[0]]) < 0.01  # two planes: well under 4-bit error (~0.08)
