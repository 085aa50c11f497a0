"""Our decoder: one gpt-fast-style transformer for Qwen2, Llama/Mistral, GLM and GLM-4.

Why not transformers' modules: fused q|k|v and gate|up projections halve the number of GEMV calls
per layer, the KV cache is a preallocated tensor we own (reusable across keystrokes), the lm head
runs on the last position only during prefill, and every Linear is a plain `nn.Linear` that the
int4 path swaps for `QuantLinear`. Numerics follow transformers (fp32 RMSNorm, fp32 rotary tables),
so greedy output is token-identical to `generate()` (tests/engine/test_parity.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codegeex_lsp.engine.arch import ModelArgs
from codegeex_lsp.engine.kv_cache import KVCache

_ACTIVATIONS = {"silu": F.silu, "swish": F.silu, "gelu": F.gelu}


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def rope_tables(args: ModelArgs, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [max_len, rotary_dim] in fp32, laid out for the model's rotary convention."""
    rd = args.rotary_dim
    inv_freq = 1.0 / (args.rope_theta ** (torch.arange(0, rd, 2, dtype=torch.int64).float() / rd))
    freqs = torch.outer(torch.arange(max_len, dtype=torch.int64).float(), inv_freq)  # [L, rd/2]
    # GLM rotates adjacent pairs (f0 f0 f1 f1 ...), NeoX-style models the two halves (f0 f1 ... f0 f1 ...).
    freqs = freqs.repeat_interleave(2, dim=-1) if args.rope_interleaved else torch.cat((freqs, freqs), dim=-1)
    return freqs.cos(), freqs.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool) -> torch.Tensor:
    """x [B, H, S, D]; cos/sin [S, rd] already in x's dtype; dims beyond rd pass through."""
    rd = cos.shape[-1]
    x_rot, x_pass = (x[..., :rd], x[..., rd:]) if rd < x.shape[-1] else (x, None)
    if interleaved:
        rotated = torch.stack((-x_rot[..., 1::2], x_rot[..., 0::2]), dim=-1).flatten(-2)
    else:
        half = rd // 2
        rotated = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
    out = x_rot * cos + rotated * sin
    return out if x_pass is None else torch.cat((out, x_pass), dim=-1)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        qkv_dim = (args.n_heads + 2 * args.n_kv_heads) * args.head_dim
        self.wqkv = nn.Linear(args.dim, qkv_dim, bias=args.qkv_bias)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)
        self.interleaved = args.rope_interleaved

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache,
        layer: int,
        start: int,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        bsz, seqlen, _ = x.shape  # [B, S, D]
        q_size, kv_size = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        q, k, v = self.wqkv(x).split([q_size, kv_size, kv_size], dim=-1)
        q = q.view(bsz, seqlen, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, S, Dh]
        k = k.view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = apply_rope(q, cos, sin, self.interleaved)
        k = apply_rope(k, cos, sin, self.interleaved)
        keys, values = cache.update(layer, start, k, v)  # [B, Hkv, start+S, Dh]
        gqa = self.n_heads != self.n_kv_heads
        if mask is None:
            out = F.scaled_dot_product_attention(q, keys, values, is_causal=seqlen > 1, enable_gqa=gqa)
        else:
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=gqa)
        out = out.transpose(1, 2).reshape(bsz, seqlen, q_size)
        return self.wo(out)


class FeedForward(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.hidden = args.intermediate_size
        self.w_gate_up = nn.Linear(args.dim, 2 * args.intermediate_size, bias=False)
        self.w_down = nn.Linear(args.intermediate_size, args.dim, bias=False)
        self.act = _ACTIVATIONS[args.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w_gate_up(x).split(self.hidden, dim=-1)
        return self.w_down(up * self.act(gate))


class Block(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)
        self.post_norms = args.post_norms
        if args.post_norms:
            self.post_attention_norm = RMSNorm(args.dim, args.norm_eps)
            self.post_ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x, cos, sin, cache, layer, start, mask):
        h = self.attention(self.attention_norm(x), cos, sin, cache, layer, start, mask)
        if self.post_norms:
            h = self.post_attention_norm(h)
        x = x + h
        h = self.feed_forward(self.ffn_norm(x))
        if self.post_norms:
            h = self.post_ffn_norm(h)
        return x + h


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs, max_seq_len: int | None = None) -> None:
        super().__init__()
        self.args = args
        self.max_seq_len = max_seq_len or args.max_position_embeddings
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(Block(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def dtype(self) -> torch.dtype:
        return self.norm.weight.dtype

    def tie_weights(self) -> None:
        self.output.weight = self.tok_embeddings.weight

    def new_cache(self, batch_size: int = 1, max_len: int | None = None) -> KVCache:
        a = self.args
        return KVCache(
            a.n_layers, batch_size, a.n_kv_heads, max_len or self.max_seq_len, a.head_dim, self.dtype
        )

    def _rope_slice(self, start: int, seqlen: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rope is None or self._rope[0].dtype != self.dtype:
            cos, sin = rope_tables(self.args, self.max_seq_len)
            self._rope = (cos.to(self.dtype), sin.to(self.dtype))
        cos, sin = self._rope
        return cos[start : start + seqlen], sin[start : start + seqlen]

    def forward(
        self, tokens: torch.Tensor, start: int, cache: KVCache, last_only: bool = True
    ) -> torch.Tensor:
        """tokens [B, S] at positions start..start+S-1 -> logits fp32 [B, V] (or [B, S, V])."""
        seqlen = tokens.shape[1]
        if start + seqlen > cache.max_len:
            raise ValueError(f"context of {start + seqlen} tokens exceeds the cache ({cache.max_len})")
        cos, sin = self._rope_slice(start, seqlen)
        mask = None
        if start > 0 and seqlen > 1:
            # Chunk after a reused prefix: query i sees keys 0..start+i.
            q_pos = torch.arange(start, start + seqlen).unsqueeze(1)
            mask = torch.arange(start + seqlen).unsqueeze(0) <= q_pos  # [S, start+S]
        x = self.tok_embeddings(tokens)  # [B, S, D]
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache, i, start, mask)
        if last_only:
            x = x[:, -1]
        x = self.norm(x)
        return self.output(x).float()
