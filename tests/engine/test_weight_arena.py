"""The decode step's int4 weights in one buffer, in step order, advised onto huge pages."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from codegeex_lsp.bench.decode import _weight_bytes_per_token
from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine import fused_decode
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.engine.weight_arena import ALIGN, HUGE_PAGE, WeightArena
from codegeex_lsp.quant.linear import QuantLinear

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _vma_flags(address: int) -> dict[str, str]:
    """The /proc/self/smaps fields of the mapping that holds `address`."""
    fields: dict[str, str] = {}
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def test_arena_copies_in_order_on_aligned_offsets():
    gen = torch.Generator().manual_seed(0)
    tensors = [
        torch.randint(0, 256, (7, 33), dtype=torch.uint8, generator=gen),
        torch.randn(5, generator=gen),
        torch.randint(0, 256, (3000,), dtype=torch.uint8, generator=gen),
    ]
    arena = WeightArena(tensors)
    addresses = [v.data_ptr() for v in arena.views]
    assert addresses == sorted(addresses)
    assert all(a % ALIGN == 0 for a in addresses)
    assert (addresses[0] - arena.buffer.data_ptr()) < HUGE_PAGE and addresses[0] % HUGE_PAGE == 0
    for original, view in zip(tensors, arena.views, strict=True):
        assert view.dtype == original.dtype and view.shape == original.shape
        assert torch.equal(view, original)
        assert view.untyped_storage().data_ptr() == arena.buffer.untyped_storage().data_ptr()


def test_arena_is_advised_onto_huge_pages_where_linux_offers_them():
    arena = WeightArena([torch.ones(3 * HUGE_PAGE, dtype=torch.uint8)])
    offered = sys.platform.startswith("linux") and THP.exists() and "[never]" not in THP.read_text()
    assert arena.huge_pages == offered
    if offered:  # the advice is on the mapping: the kernel may back it with 2 MB pages
        assert _vma_flags(arena.views[0].data_ptr()).get("THPeligible") == "1"


def test_loading_an_int4_model_builds_its_plan_so_the_first_completion_does_not(tiny_model_factory, tmp_path):
    opts = EngineOptions(model=str(tiny_model_factory("llama")), quant="int4", cache_dir=str(tmp_path))
    model = load_model(opts).model
    assert fused_decode._plans.get(model) is not None
    storages = {lin.packed.untyped_storage().data_ptr() for lin in fused_decode.step_linears(model)}
    assert len(storages) == 1


def test_plan_moves_the_step_weights_into_one_buffer_in_step_order(tiny_model_factory, tmp_path, monkeypatch):
    opts = EngineOptions(model=str(tiny_model_factory("llama")), quant="int4", cache_dir=str(tmp_path))
    monkeypatch.setenv(fused_decode.FUSED_ENV, "0")  # load without the plan, to see what building it moves
    model = load_model(opts).model
    monkeypatch.delenv(fused_decode.FUSED_ENV)
    assert len({lin.packed.untyped_storage().data_ptr() for lin in fused_decode.step_linears(model)}) > 1
    linears = fused_decode.step_linears(model)
    before = [(lin.packed.clone(), None if lin.residual is None else lin.residual.clone()) for lin in linears]
    step_bytes = _weight_bytes_per_token(model)
    assert fused_decode.plan_for(model) is not None
    assert _weight_bytes_per_token(model) == step_bytes, "bench decode counts the weights, not the arena"
    storages = {lin.packed.untyped_storage().data_ptr() for lin in linears}
    assert len(storages) == 1, "every packed weight now lives in the one arena buffer"
    addresses = [lin.packed.data_ptr() for lin in linears]
    assert addresses == sorted(addresses), "in the order the decode step reads them"
    for lin, (packed, residual) in zip(linears, before, strict=True):
        assert isinstance(lin, QuantLinear)
        assert torch.equal(lin.packed, packed)
        assert residual is None or torch.equal(lin.residual, residual)
