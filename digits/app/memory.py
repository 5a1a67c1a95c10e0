"""Giving the memory a burst of requests freed back to the system (glibc's malloc_trim).

glibc keeps freed memory in its heaps for reuse: after a burst of 1 MiB bodies and large
decodes, the server's resident memory stays near its peak. malloc_trim(0) returns the free
pages of every heap. Other C libraries (musl, macOS) have no malloc_trim: nothing is done.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Give the free pages of the C heaps back to the system; False where that is not
    possible. Takes milliseconds: call it from a worker thread."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
