"""bf16 Linear layers with weights pre-packed once into oneDNN's blocked layout.

`F.linear` on bf16 CPU tensors goes through oneDNN but re-lays-out the weight on every call; for
decode (one activation row) that reorder costs as much as the GEMV itself. Packing at load time
(the runtime-conversion step of gpt-fast) removes it. The result is bit-identical to `F.linear`
(tests/engine/test_packed_linear.py); where the op is missing, or the CPU cannot run it (oneDNN's bf16
packing needs AVX-512 BW/VL/DQ or AVX-NE-CONVERT: an AVX2-only host refuses it), the model keeps
plain `nn.Linear`.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


class PackedLinear(nn.Module):
    """y = x @ W^T + b with W pre-packed by oneDNN (bf16 only)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 1)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


@functools.cache
def packing_available() -> bool:
    """Whether oneDNN packs bf16 weights on this build and CPU (asked once, with a tiny weight)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")):
        return False
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(8, 32, dtype=torch.bfloat16), 1)
    except RuntimeError as exc:  # e.g. "bf16 path needs the cpu support avx_ne_convert or avx512bw, ..."
        log.info("oneDNN bf16 weight packing unavailable on this CPU (%s); bf16 uses F.linear", exc)
        return False
    return True


def pack_linears_(model: nn.Module) -> int:
    """Swap every bf16 `nn.Linear` in `model` for a PackedLinear; returns how many were packed."""
    if not packing_available():
        return 0
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear and child.weight.dtype == torch.bfloat16:
                try:
                    setattr(module, name, PackedLinear(child))
                except RuntimeError as exc:  # an op build without bf16 packing: keep F.linear
                    log.info("oneDNN weight packing unavailable (%s); using F.linear", exc)
                    return count
                count += 1
    return count


def count_parameters(model: nn.Module) -> int:
    """Parameters of `model`, packed weights included: oneDNN's bf16 and our int4 ones are buffers,
    not Parameters (an int4 weight counts as its logical size, whatever its planes)."""
    from codegeex_lsp.quant.linear import QuantEmbedding, QuantLinear

    packed = 0
    for m in model.modules():
        if isinstance(m, PackedLinear | QuantLinear):
            packed += m.in_features * m.out_features
        elif isinstance(m, QuantEmbedding):
            packed += m.num_embeddings * m.embedding_dim
    return packed + sum(p.numel() for p in model.parameters())
