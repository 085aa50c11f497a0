"""KV caches: the preallocated per-request cache, and the per-document LRU that keeps it between keystrokes.

`KVCache` is fixed-size (gpt-fast): one [B, Hkv, max_len, Dh] tensor per layer for keys and for
values, so decode never reallocates. `length` says how many positions are valid; attention only
ever reads positions below the end of the chunk it writes, so rolling `length` back (a rejected
speculative draft, the end of a reused prefix) needs no clearing: the stale positions are
overwritten by the next write.

`PrefixCache` keeps, per document, the cache of the last prompt together with its token ids. The
next prompt for that document reuses the longest common token prefix and prefills only the rest.
It is an LRU over documents bounded in bytes; a cache is taken out while a request decodes into
it (so the decode owns it) and put back afterwards.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

import torch

from codegeex_lsp.engine.memory import release_free_memory

# Per-document caches are sized to what a request needs, rounded up to this many positions, so a
# document's cache is rarely reallocated while the user types and a small prompt does not pin a
# whole context window of memory.
CACHE_LEN_STEP = 256


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

    def truncate(self, length: int) -> None:
        """Keep only the first `length` positions (rejected draft tokens, a reused prefix)."""
        if not 0 <= length <= self.max_len:
            raise ValueError(f"cannot truncate a cache of {self.max_len} positions to {length}")
        self.length = min(self.length, length)

    def resized(self, max_len: int) -> KVCache:
        """A cache of `max_len` positions holding this one's valid positions (a longer prompt)."""
        keep = min(self.length, max_len)
        out = KVCache.__new__(KVCache)
        out.k, out.v = [], []
        for src, dst in ((self.k, out.k), (self.v, out.v)):
            for t in src:
                b, h, _, d = t.shape
                new = torch.zeros((b, h, max_len, d), dtype=t.dtype)
                new[:, :, :keep] = t[:, :, :keep]
                dst.append(new)
        out.max_len, out.batch_size, out.length = max_len, self.batch_size, keep
        return out

    def expand(self, batch_size: int) -> KVCache:
        """A new cache whose rows all copy row 0 of this one (n candidates after one prefill)."""
        out = KVCache.__new__(KVCache)
        out.k = [t[:1].expand(batch_size, *t.shape[1:]).clone() for t in self.k]
        out.v = [t[:1].expand(batch_size, *t.shape[1:]).clone() for t in self.v]
        out.max_len, out.batch_size, out.length = self.max_len, batch_size, self.length
        return out


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def cache_len_for(n_tokens: int, limit: int, step: int = CACHE_LEN_STEP) -> int:
    """Positions to allocate for `n_tokens`: rounded up to `step`, at most `limit`."""
    return min(limit, -(-n_tokens // step) * step)


class PrefixCache:
    """Per-key (document) KV caches of the last prompt, least recently used evicted past `max_bytes`.

    `take` removes a key's entry and says how many leading tokens of the new prompt it holds;
    `put` stores a cache back with the tokens its first positions hold. Only those positions are
    trusted later: decoding writes generated tokens after the prompt, which the next prompt does
    not share. Entries bigger than the whole budget are not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[tuple[int, ...], KVCache]] = OrderedDict()
        self.nbytes = 0
        self.hits = 0  # takes that found a usable prefix
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def take(self, key: Hashable, token_ids: Sequence[int]) -> tuple[KVCache | None, int]:
        """(the key's cache, how many leading `token_ids` it holds), or (None, 0); the entry leaves."""
        entry = self._entries.pop(key, None)
        if entry is None:
            self.misses += 1
            return None, 0
        cached_ids, cache = entry
        self.nbytes -= cache.nbytes
        n = min(common_prefix_len(cached_ids, token_ids), cache.length)
        if n > 0:
            self.hits += 1
        else:
            self.misses += 1
        return cache, n

    def put(self, key: Hashable, token_ids: Sequence[int], cache: KVCache) -> None:
        """Keep `cache`, whose first len(token_ids) positions hold `token_ids`, as `key`'s entry."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.nbytes -= old[1].nbytes
        if not token_ids or cache.batch_size != 1 or cache.nbytes > self.max_bytes:
            return
        cache.truncate(len(token_ids))
        self._entries[key] = (tuple(token_ids), cache)
        self.nbytes += cache.nbytes
        evicted_any = False
        while self.nbytes > self.max_bytes:
            _key, (_ids, evicted) = self._entries.popitem(last=False)
            self.nbytes -= evicted.nbytes
            evicted_any = True
        if evicted_any:
            del evicted
            release_free_memory()

    def discard(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.nbytes -= entry[1].nbytes
            del entry
            release_free_memory()

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0
        release_free_memory()
