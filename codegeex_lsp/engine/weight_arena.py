"""The int4 weights of a decode step in one buffer, in the order the step reads them, on huge pages.

Why: a decode step streams ~330 MB of packed int4 weights once per token. Spread over a few hundred
separately allocated tensors on 4 KB pages, that is ~80,000 TLB misses per token and a new stream
for the hardware prefetchers at every tensor. Linux backs anonymous memory with 2 MB pages only
where asked (`/sys/kernel/mm/transparent_hugepage/enabled` is usually `madvise`), so the buffer is
advised (MADV_HUGEPAGE) before it is first written. Measured on the 0.5B model's GEMV sequence
(AVX2-only host, 2 threads; `docs/results/decode/README.md`): ~20 -> ~18 ms per step.

Where the advice cannot be given (another OS, THP off) the buffer is still one contiguous block in
step order, which is all the results depend on: the values are copied, never changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Iterable

import torch

log = logging.getLogger(__name__)

HUGE_PAGE = 2 << 20
ALIGN = 64  # each tensor starts on a cache line
MADV_HUGEPAGE = 14  # linux/mman.h


def _madvise_huge(address: int, length: int) -> bool:
    """Advise [address, address + length) (2 MB aligned) to be backed by huge pages."""
    if not sys.platform.startswith("linux") or length <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return False
    rc = libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), ctypes.c_int(MADV_HUGEPAGE))
    if rc != 0:
        log.debug("madvise(MADV_HUGEPAGE) failed: errno %d", ctypes.get_errno())
    return rc == 0


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class WeightArena:
    """One uint8 buffer holding copies of `tensors`, each at a 64-byte aligned offset, in order.

    `views[i]` has the shape and dtype of `tensors[i]`; the arena owns the memory (keep it alive as
    long as any view is used: each view holds a reference to the buffer's storage)."""

    def __init__(self, tensors: Iterable[torch.Tensor]) -> None:
        tensors = list(tensors)
        for t in tensors:
            if t.device.type != "cpu" or not t.is_contiguous():
                raise ValueError("WeightArena: tensors must be contiguous CPU tensors")
        sizes = [t.numel() * t.element_size() for t in tensors]
        offsets, total = [], 0
        for size in sizes:
            offsets.append(total)
            total += _round_up(size, ALIGN)
        # Allocated, not yet touched: the advice must come before the first write faults the pages in.
        self.buffer = torch.empty(_round_up(total, HUGE_PAGE) + HUGE_PAGE, dtype=torch.uint8)
        base = self.buffer.data_ptr()
        start = _round_up(base, HUGE_PAGE) - base
        self.huge_pages = _madvise_huge(base + start, _round_up(total, HUGE_PAGE))
        self.nbytes = total
        self.views: list[torch.Tensor] = []
        for t, offset, size in zip(tensors, offsets, sizes, strict=True):
            flat = self.buffer[start + offset : start + offset + size]
            view = flat.view(t.dtype).view(t.shape) if size else torch.empty(t.shape, dtype=t.dtype)
            view.copy_(t)
            self.views.append(view)


def place_step_weights(linears: Iterable[object]) -> WeightArena | None:
    """Move every `packed` and `residual` tensor of `linears` (QuantLinears, in the order a decode
    step reads them) into one WeightArena and point the modules at the copies; None if there is none."""
    linears = list(linears)
    slots: list[tuple[object, str]] = []
    for linear in linears:
        for name in ("packed", "residual"):
            if getattr(linear, name, None) is not None:
                slots.append((linear, name))
    if not slots:
        return None
    arena = WeightArena(getattr(module, name) for module, name in slots)
    for (module, name), view in zip(slots, arena.views, strict=True):
        setattr(module, name, view)
    log.info(
        "int4 weights: %.0f MB in one buffer in step order%s",
        arena.nbytes / 1e6,
        " on huge pages" if arena.huge_pages else " (no huge-page advice here)",
    )
    return arena
