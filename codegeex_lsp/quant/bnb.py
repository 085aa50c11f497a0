"""bitsandbytes nf4 / int8 linears, only as a point of comparison for `bench kernels` (optional import).

bitsandbytes is not a dependency: `bnb_linear` returns None when it is missing or has no backend for
the weight's device, and `unavailable_reason()` says why.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import torch
from torch import nn

log = logging.getLogger(__name__)

BNB_KINDS: tuple[str, ...] = ("nf4", "int8")
_reason: str | None = None


def _bnb() -> ModuleType | None:
    global _reason
    try:
        return importlib.import_module("bitsandbytes")
    except Exception as exc:  # bitsandbytes raises many kinds of errors on unsupported setups
        _reason = f"{type(exc).__name__}: {exc}"
        return None


def unavailable_reason() -> str | None:
    _bnb()
    return _reason


@torch.no_grad()
def bnb_linear(linear: nn.Linear, kind: str = "nf4") -> nn.Module | None:
    """A bitsandbytes copy of `linear` (nf4 4-bit or LLM.int8 without outliers), or None."""
    global _reason
    if kind not in BNB_KINDS:
        raise ValueError(f"kind must be one of {BNB_KINDS}")
    bnb = _bnb()
    if bnb is None:
        return None
    device = linear.weight.device
    weight = linear.weight.detach().to(torch.float32).clone()
    has_bias = linear.bias is not None
    try:
        if kind == "nf4":
            module = bnb.nn.Linear4bit(
                linear.in_features,
                linear.out_features,
                bias=has_bias,
                quant_type="nf4",
                compute_dtype=torch.float32,
            )
            module.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        else:
            module = bnb.nn.Linear8bitLt(
                linear.in_features, linear.out_features, bias=has_bias, has_fp16_weights=False, threshold=0.0
            )
            module.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
        if has_bias:
            module.bias = nn.Parameter(linear.bias.detach().to(torch.float32).clone(), requires_grad=False)
        module = module.to(device)
        module(torch.zeros(1, linear.in_features, device=device))  # fails here if no backend runs it
    except Exception as exc:  # any backend failure means "not comparable here"
        _reason = f"bitsandbytes {kind} on {device.type}: {type(exc).__name__}: {exc}"
        log.info("%s", _reason)
        return None
    return module
