"""Give freed heap memory back to the OS after KV caches are dropped.

KV caches are a few hundred KiB per layer tensor: glibc serves such blocks from its heap once its
dynamic mmap threshold has grown, and freeing them leaves holes that it keeps. Over thousands of
keystrokes across documents the worker's RSS then creeps up even though the cache bytes it holds
stay within their budget. `malloc_trim(0)` returns those free pages; elsewhere it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return free heap pages to the OS; True if the C library did (glibc only)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
