"""A preallocated KV cache: one [B, Hkv, max_len, Dh] tensor per layer for keys and for values.

Fixed-size (gpt-fast) so decode never reallocates; `length` says how many positions are valid,
which is what prefix reuse across keystrokes builds on.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self, n_layers: int, batch_size: int, n_kv_heads: int, max_len: int, head_dim: int, dtype: torch.dtype
    ) -> None:
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype) for _ in range(n_layers)]
        self.max_len = max_len
        self.batch_size = batch_size
        self.length = 0

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))

    def update(
        self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k/v [B, Hkv, S, Dh] at positions start..; return the valid keys/values so far."""
        end = start + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        if layer == len(self.k) - 1:
            self.length = end
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def expand(self, batch_size: int) -> KVCache:
        """A new cache whose rows all copy row 0 of this one (n candidates after one prefill)."""
        out = KVCache.__new__(KVCache)
        out.k = [t[:1].expand(batch_size, *t.shape[1:]).clone() for t in self.k]
        out.v = [t[:1].expand(batch_size, *t.shape[1:]).clone() for t in self.v]
        out.max_len, out.batch_size, out.length = self.max_len, batch_size, self.length
        return out
