"""The screened lm head: an int4 screen over principal directions, its best candidates rescored exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine import fused_decode
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.quant import (
    QuantLinear,
    load_quantized_into,
    quantize_model_,
    read_metadata,
    save_quantized,
)
from codegeex_lsp.quant.linear import specs_from_json
from codegeex_lsp.quant.screened_head import (
    ScreenedHead,
    int8_rows,
    principal_directions,
    screen_dim_for,
    screen_head_,
)

SOURCE_SHA = "0123456789abcdef" * 4


def _q8_weight(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """A weight on a Q8_0 grid (d * q per 32 inputs, as the GGUF's head)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-127, 128, (n, k // 32, 32), generator=g).float()
    q[..., 0] = 127.0  # each block reaches its absmax, as Q8_0's scale is chosen
    d = torch.rand(n, k // 32, 1, generator=g) * 0.01 + 1e-4
    return (q * d).reshape(n, k)


def _head(vocab: int = 700, dim: int = 128, candidates: int = 64, seed: int = 0):
    """(screened head, float head, hidden states): the hidden states have a few strong directions,
    as real ones do, and the Hessian is theirs."""
    g = torch.Generator().manual_seed(seed)
    linear = nn.Linear(dim, vocab, bias=False)
    with torch.no_grad():
        linear.weight.copy_(_q8_weight(vocab, dim, seed))
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=g))[0]
    spread = torch.logspace(1, -1, dim)
    x = (torch.randn(400, dim, generator=g) * spread) @ basis.T * 30
    head = ScreenedHead.from_linear(linear, x.T @ x, screen_dim_for(dim), candidates)
    return head, linear, x


def test_int8_rows_reproduce_a_q8_0_weight_exactly() -> None:
    w = _q8_weight(50, 96)
    codes, scales = int8_rows(w)
    assert codes.dtype == torch.int8 and scales.shape == (50, 3)
    assert torch.equal((codes.float().reshape(50, 3, 32) * scales[..., None]).reshape(50, 96), w)


def test_principal_directions_are_the_top_eigenvectors() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(64, 64, generator=g)
    h = a @ a.T
    p = principal_directions(h, 16)
    assert p.shape == (64, 16)
    torch.testing.assert_close(p.T @ p, torch.eye(16), atol=1e-5, rtol=0)
    top = torch.linalg.eigvalsh(h.double()).flip(0)[:16].float()
    torch.testing.assert_close(torch.diag(p.T @ h @ p), top, rtol=1e-4, atol=1e-3)


def test_screen_dim_is_a_multiple_of_32() -> None:
    assert screen_dim_for(896) == 448 and screen_dim_for(64) == 32 and screen_dim_for(32) == 32
    with pytest.raises(ValueError):
        ScreenedHead(64, 10, screen_dim=48)


def test_candidates_get_the_exact_logits_and_the_rest_the_screens() -> None:
    head, linear, x = _head()
    exact = x @ linear.weight.T
    screen = head.screen(x @ head.proj)
    out = head(x)
    top = screen.topk(head.candidates, -1).indices
    # the candidates: the exact products with the 8-bit rows (the head itself here)
    torch.testing.assert_close(out.gather(-1, top), exact.gather(-1, top), rtol=1e-4, atol=1e-3)
    # everything else: the screen's estimate, untouched
    rest = torch.ones_like(out, dtype=torch.bool).scatter_(-1, top, False)
    assert torch.equal(out[rest], screen[rest])
    # the screen is coarse (half the directions) yet its candidates hold the top token
    assert (screen.argmax(-1) != exact.argmax(-1)).any()
    assert torch.equal(out.argmax(-1), exact.argmax(-1))


def test_all_candidates_is_the_exact_head() -> None:
    head, linear, x = _head(vocab=200, candidates=200)
    torch.testing.assert_close(head(x), x @ linear.weight.T, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(head.exact_weight(), linear.weight.detach())


def test_the_screen_quantizes_like_any_linear_and_survives_a_checkpoint(tmp_path) -> None:
    head, linear, x = _head()
    model = nn.Module()
    model.output = head
    quantize_model_(model, "asym", 32)
    assert isinstance(model.output, ScreenedHead) and isinstance(model.output.screen, QuantLinear)
    before = model.output(x)
    assert torch.equal(before.argmax(-1), (x @ linear.weight.T).argmax(-1))
    path = save_quantized(model, tmp_path / "head.safetensors", {"source_model_sha256": SOURCE_SHA})
    specs = specs_from_json(read_metadata(path)["specs"])
    assert [(s.name, s.kind) for s in specs] == [("output", "screened_head"), ("output.screen", "linear")]
    assert specs[0].screen_dim == head.screen_dim and specs[0].candidates == head.candidates
    skeleton = nn.Module()
    with torch.device("meta"):
        skeleton.output = nn.Linear(linear.in_features, linear.out_features, bias=False)
    load_quantized_into(skeleton, path, source_model_sha256=SOURCE_SHA)
    assert torch.equal(skeleton.output(x), before)


def test_screen_head_needs_a_bias_free_linear_with_a_hessian() -> None:
    model = nn.Module()
    model.output = nn.Linear(64, 40, bias=True)
    assert screen_head_(model, {"output": torch.eye(64)}) is None and isinstance(model.output, nn.Linear)
    model.output = nn.Linear(64, 40, bias=False)
    assert screen_head_(model, {}) is None
    hessians = {"output": torch.eye(64)}
    assert isinstance(screen_head_(model, hessians), ScreenedHead)
    assert hessians["output.screen"].shape == (32, 32)


def test_the_engine_builds_a_screened_head_and_the_fused_step_rescores_like_forward(
    tiny_model_factory, tmp_path
) -> None:
    """The int4 build screens the head; the fused C++ step picks and rescores the same candidates as
    the op-by-op forward (same exact values to float noise, the same top token)."""
    opts = EngineOptions(model=str(tiny_model_factory("qwen2")), quant="int4", cache_dir=str(tmp_path))
    loaded = load_model(opts)
    model, tok = loaded.model, loaded.tokenizer
    head = model.output
    assert isinstance(head, ScreenedHead) and head.candidates < head.out_features
    assert fused_decode.plan_for(model) is not None, fused_decode.unsupported_reason(model)
    ids = torch.tensor([tok.encode("def add(a, b):\n    return a + b\n")])
    with torch.inference_mode():
        cache = model.new_cache(1, 64)
        model(ids[:, :-1], 0, cache)
        fused_cache = model.new_cache(1, 64)
        for mine, theirs in ((fused_cache.k, cache.k), (fused_cache.v, cache.v)):
            for a, b in zip(mine, theirs, strict=True):
                a.copy_(b)
        pos = ids.shape[1] - 1
        hidden: list[torch.Tensor] = []  # the final norm's output, which the exact rows multiply
        hook = model.norm.register_forward_hook(lambda _m, _i, out: hidden.append(out))
        ref = model(ids[:, -1:], pos, cache)
        hook.remove()
        fused = fused_decode.decode_step(model, fused_cache, ids[:, -1:], pos)
    h = hidden[0].reshape(1, -1)
    exact = (h @ head.exact_weight().T)[0]
    with torch.inference_mode():
        top = head.screen(h @ head.proj)[0].topk(head.candidates).indices  # forward's candidates
    torch.testing.assert_close(ref[0, top], exact[top], rtol=1e-4, atol=1e-4)
    assert ref.argmax() == fused.argmax() == exact.argmax()
    # the fused step rescored the same candidates (up to a few at the screen's boundary, where float
    # noise in its inputs may swap them): they hold exact values, the others the screen's
    is_exact = (fused[0] - exact).abs() <= 1e-3 * (1 + exact.abs())
    assert is_exact[top].float().mean() >= 0.97
    assert is_exact.sum() <= head.candidates + 8


def test_a_decode_step_reads_the_screen_and_the_candidates_rows_not_the_exact_table() -> None:
    from codegeex_lsp.bench.decode import _weight_bytes_per_token

    head, _, _ = _head(vocab=700, dim=128, candidates=64)
    model = nn.Module()
    model.output = head
    quantize_model_(model, "asym", 32)
    screen = model.output.screen.packed.numel()  # uint8
    rows = 64 * (128 + 4 * 4)  # int8 codes + an fp32 scale per 32
    assert _weight_bytes_per_token(model) == screen + 128 * 64 * 4 + rows
    assert _weight_bytes_per_token(model) < head.exact_q.numel()  # less than the 8-bit table alone
