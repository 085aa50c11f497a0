"""One C++ call per decoded token for int4 models (kernels/cpu/int4_decode.cpp).

Decoding one token op by op from Python cost as much as streaming the int4 weights: ~1,000 small
ATen ops per token around 109 GEMVs (measured on the 0.5B model, 2 cores: 23 ms per token, 11 ms of
it in the GEMVs). `Int4DecodePlan` runs the whole step (norms, projections, rotary, cache write,
attention, FFN, logits) in one call with the same kernels, in fp32 as the op-by-op int4 path, so a
step's logits match it to float noise (tests/engine/test_fused_decode.py).

`step_many` does the same for a few tokens at once (up to `MAX_FUSED_TOKENS`): the last token with a
speculative draft, or a prompt delta that short, streaming the weights once for all of them.

It serves only what it covers: one sequence on the CPU, every linear a
`QuantLinear` on the compiled kernels without an AWQ input scale, SiLU, no post-norms, fp32.
Anything else (several candidates, float weights, the reference or Triton kernels) runs
`Transformer.forward`. `CODEGEEX_LSP_FUSED_DECODE=0` turns it off, which the
decode benchmark uses to measure what it buys.
"""

from __future__ import annotations

import logging
import os
import weakref

import torch

from codegeex_lsp.engine.kv_cache import KVCache
from codegeex_lsp.engine.model import Transformer
from codegeex_lsp.engine.weight_arena import place_step_weights
from codegeex_lsp.quant import ops
from codegeex_lsp.quant.linear import QuantLinear
from codegeex_lsp.quant.screened_head import ScreenedHead

log = logging.getLogger(__name__)

FUSED_ENV = "CODEGEEX_LSP_FUSED_DECODE"

_plans: weakref.WeakKeyDictionary[Transformer, object | None] = weakref.WeakKeyDictionary()


def enabled() -> bool:
    """Whether the fused step may run (on unless CODEGEEX_LSP_FUSED_DECODE=0)."""
    return os.environ.get(FUSED_ENV, "1") != "0"


def unsupported_reason(model: Transformer) -> str | None:
    """Why `model` cannot run the fused step, or None when it can."""
    args = model.args
    head = _head_linear(model)
    if not isinstance(head, QuantLinear):
        return "the weights are not int4"
    if args.post_norms:
        return "post-norms are not covered"
    if args.hidden_act not in ("silu", "swish"):
        return f"activation {args.hidden_act!r} is not covered"
    if model.dtype != torch.float32:
        return f"dtype {model.dtype} is not covered (int4 models run in float32)"
    for linear in step_linears(model):
        if not isinstance(linear, QuantLinear):
            return "not every linear is int4"
        if linear.act_scale is not None:
            return "AWQ input scales are not covered"
        if linear.kernel not in (None, "cpp") or linear.packed.device.type != "cpu":
            return "a linear runs another kernel or device"
    if ops.resolve_kernel() != "cpp":
        return "the int4 kernel in use is not the compiled C++ one"
    if not hasattr(torch.classes.codegeex_lsp, "Int4DecodePlan"):
        return "the compiled kernels predate the fused decode step (reinstall)"
    return None


def _head_linear(model: Transformer) -> object:
    """The linear the plan streams for the lm head: the head, or a screened head's screen."""
    return model.output.screen if isinstance(model.output, ScreenedHead) else model.output


def _linear_parts(linear: QuantLinear) -> tuple[list[torch.Tensor], list[int]]:
    empty = torch.empty(0)
    parts = [linear.packed, linear.residual if linear.residual is not None else empty]
    parts.append(linear.bias.float().contiguous() if linear.bias is not None else empty)
    return parts, [linear.in_features, linear.group_size]


def step_linears(model: Transformer) -> list[torch.nn.Module]:
    """The linears of a decode step (int4 where the plan covers the model), in the order it reads them."""
    linears = []
    for layer in model.layers:
        attention, ffn = layer.attention, layer.feed_forward
        linears += [attention.wqkv, attention.wo, ffn.w_gate_up, ffn.w_down]
    return [*linears, _head_linear(model)]


def build_plan(model: Transformer) -> object:
    """The C++ plan holding references to `model`'s int4 weights. The packed codes move once into one
    buffer in step order on huge pages (weight_arena.py); the modules use the same copies."""
    args = model.args
    place_step_weights(step_linears(model))
    tensors: list[torch.Tensor] = []
    ints = [
        args.n_layers,
        args.dim,
        args.n_heads,
        args.n_kv_heads,
        args.head_dim,
        args.rotary_dim,
        int(args.rope_interleaved),
        args.intermediate_size,
    ]
    linear_ints: list[int] = []
    for layer in model.layers:
        tensors += [layer.attention_norm.weight.detach(), layer.ffn_norm.weight.detach()]
        for linear in (
            layer.attention.wqkv,
            layer.attention.wo,
            layer.feed_forward.w_gate_up,
            layer.feed_forward.w_down,
        ):
            parts, meta = _linear_parts(linear)
            tensors += parts
            linear_ints += meta
    parts, meta = _linear_parts(_head_linear(model))
    tensors += [model.norm.weight.detach(), *parts]
    linear_ints += meta
    cos, sin = model._rope_slice(0, model.max_seq_len)  # the tables forward() uses
    tensors += [cos, sin]
    head = model.output
    if isinstance(head, ScreenedHead):
        tensors += [head.proj.float().contiguous(), head.exact_q, head.exact_d.float().contiguous()]
        linear_ints += [head.screen_dim, head.candidates]
    else:
        tensors += [torch.empty(0), torch.empty(0), torch.empty(0)]
        linear_ints += [0, 0]
    return torch.classes.codegeex_lsp.Int4DecodePlan(tensors, ints + linear_ints, float(args.norm_eps))


def plan_for(model: Transformer) -> object | None:
    """The model's plan, built on first use; None when the fused step does not cover the model."""
    if not enabled():
        return None
    if model not in _plans:
        reason = unsupported_reason(model)
        _plans[model] = None if reason else build_plan(model)
        if reason and isinstance(_head_linear(model), QuantLinear):
            log.info("fused int4 decode off for this model: %s", reason)
    return _plans[model]


# The most tokens one fused call takes: a speculative check (the last token and a draft of up to 8)
# gains from skipping ~1,000 ATen ops; longer chunks run faster op by op, where ATen's flash attention
# and vectorized elementwise ops beat ours (the 0.5B model on 2 cores, after 600 cached positions:
# 8 tokens 169 vs 156 tok/s fused vs op by op, 16 tokens 188 vs 231).
MAX_FUSED_TOKENS = 9


def forward_tokens(
    model: Transformer, cache: KVCache, tokens: torch.Tensor, start: int, last_only: bool = True
) -> torch.Tensor | None:
    """logits [1, V] for the last of tokens [1, S] at positions start.. (or [S, V] for each, the
    speculative check) through the fused step; None where it does not apply (then forward() runs)."""
    seqlen = tokens.shape[-1]
    if tokens.dim() != 2 or tokens.shape[0] != 1 or cache.batch_size != 1 or start + seqlen > cache.max_len:
        return None
    if seqlen > MAX_FUSED_TOKENS:
        return None
    plan = plan_for(model)
    if plan is None:
        return None
    x = model.tok_embeddings(tokens)
    if seqlen == 1:
        logits = plan.step(x, start, cache.k, cache.v)
    else:
        logits = plan.step_many(x[0], start, cache.k, cache.v, last_only)
    cache.length = start + seqlen
    return logits


def decode_step(model: Transformer, cache: KVCache, tokens: torch.Tensor, pos: int) -> torch.Tensor | None:
    """logits [1, V] for one token at `pos` through the fused step, or None where it does not apply."""
    if tokens.shape != (1, 1):
        return None
    return forward_tokens(model, cache, tokens, pos)
