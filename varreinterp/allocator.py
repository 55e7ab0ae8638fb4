"""Keep freed memory in the process (glibc malloc).

By default glibc serves every block above 128 KB with its own mmap and returns it to the kernel
on free, and trims the heap above 128 KB of free space. The per-file numpy arrays and Arrow
buffers of indexing (tens of MB per exome) were then page-faulted in anew for every file:
4.6 s of system time for 100 exomes. With blocks up to 32 MB from the heap and 256 MB kept
before trimming, the same `cohort add` took 15% less wall time (23.4 -> 19.9 s)."""

from __future__ import annotations

import functools

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


@functools.cache
def keep_freed_memory() -> bool:
    """Set once per process; False where the C library is not glibc (nothing to tune)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's largest allowed value on 64-bit
    ok &= mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    ok &= mallopt(_M_TOP_PAD, 64 << 20)
    return bool(ok)
