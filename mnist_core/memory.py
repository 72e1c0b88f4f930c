"""Giving a long-lived driver's freed memory back to the operating system.

A sweep driver runs for hours through phases that each read many Parquet files (the live
page, compaction, the summary, the choice, the final page) and free what they read. Measured
with ``bench/scale.py`` (200,000 stand-in trials): Arrow's own pool never held more than
72 MB at once, yet the driver's resident memory ratcheted up by about 300 MB, phase after
phase — freed memory kept by the allocators (glibc's per-thread arenas, which Arrow's
reader threads and Parquet's metadata decoding use, and mimalloc's segments), not memory in
use. Two standard remedies, as Dask applies them to its workers: fewer glibc arenas, and
asking both allocators to return what they hold free (``malloc_trim``,
``MemoryPool.release_unused``) after each phase. Where glibc is absent (macOS, musl) the glibc
half does nothing.
"""

from __future__ import annotations

import ctypes
import functools

M_ARENA_MAX = -8  # glibc's mallopt parameter: how many malloc arenas threads may share


@functools.cache
def _glibc():
    try:
        library = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return library if hasattr(library, "malloc_trim") else None


def limit_malloc_arenas(count: int = 2) -> None:
    """At most ``count`` glibc malloc arenas for threads created from now on."""
    library = _glibc()
    if library is not None:
        library.mallopt(M_ARENA_MAX, count)


def release_unused() -> None:
    """Return the free memory Arrow's pool and glibc's malloc hold to the operating system."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    library = _glibc()
    if library is not None:
        library.malloc_trim(0)
