"""Keep freed CPU memory from piling up in the C heap while sessions propagate long videos.

Propagating a video allocates and frees the same tensors frame after frame (SAM 2 features,
memories, masks of a few hundred KiB each), from the request thread and the backend's background
thread. With glibc's defaults those freed blocks stay in the heap (its mmap threshold climbs to
32 MiB after the first large frees, so they are no longer handed back when freed) and in one arena
per thread: the resident size of a serving process grew by about 1 MiB per 320x240 frame (issue
12: +555 MiB for a 320-frame box track, growth that was free memory, not kept data).

Three measures, all no-ops where glibc is not the C library:

* :func:`limit_heap_retention` caps the arenas at two (``MALLOC_ARENA_MAX=2``, as the Docker images
  set) and serves blocks of :data:`MMAP_THRESHOLD_BYTES` (4 MiB) and more by mmap, handed back as
  soon as they are freed (the large transients: attention matrices, activations of a frame
  chunk), unless the environment chose values;
* :func:`note_frame_done`, called once per propagated frame, reads the resident size (one
  ``/proc/self/statm`` read, ~20 us) and runs ``malloc_trim(0)`` when it grew more than
  :data:`TRIM_GROWTH_BYTES` since the last trim: the free pages of every arena go back to the
  kernel (about 4 ms for a 400 MiB heap). On a GPU the C heap barely moves and it never trims;
  on a CPU it trims every few frames;
* :func:`release_free_memory` at the end of each propagation call, before another thread (with
  its own arena) takes over.

A threshold of 128 KiB (``MALLOC_MMAP_THRESHOLD_=131072``, what the Docker images set) also keeps
the heap small, but every block of 128 KiB or more then costs an mmap and fresh page faults: SAM
2 on the CPU ran 1.5-2x slower. At 4 MiB only blocks whose use costs far more than their page
faults are mapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ARENA_MAX = 2
MMAP_THRESHOLD_BYTES = 4 << 20
TRIM_GROWTH_BYTES = 16 << 20
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt parameters of glibc's malloc.h
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_libc: ctypes.CDLL | None | bool = None  # None: not looked up yet; False: not glibc
_trimmed_at: int | None = None  # resident bytes right after the last trim


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
            libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _libc = libc
        except (OSError, AttributeError):  # musl, macOS: nothing to tune
            _libc = False
    return _libc or None


def limit_heap_retention() -> bool:
    """Set :data:`ARENA_MAX` and :data:`MMAP_THRESHOLD_BYTES` (cheap to repeat; an explicit
    ``MALLOC_ARENA_MAX`` / ``MALLOC_MMAP_THRESHOLD_`` in the environment wins).

    Returns:
        True when both are in force.
    """
    libc = _glibc()
    if libc is None:
        return False
    ok = True
    if not os.environ.get("MALLOC_ARENA_MAX"):
        ok = libc.mallopt(_M_ARENA_MAX, ARENA_MAX) == 1
    if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and ok
    return ok


def release_free_memory() -> bool:
    """Return the C heap's free pages to the kernel now (``malloc_trim(0)``); False if not glibc."""
    global _trimmed_at
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    _trimmed_at = resident_bytes()
    return True


def resident_bytes() -> int | None:
    """This process's resident set size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None


def note_frame_done() -> None:
    """Call once per propagated frame: trims the heap when the resident size grew by more than
    :data:`TRIM_GROWTH_BYTES` since the last trim (a lost update between two threads only moves
    one trim)."""
    global _trimmed_at
    rss = resident_bytes()
    if rss is None or _glibc() is None:
        return
    if _trimmed_at is None or rss < _trimmed_at:
        _trimmed_at = rss
    elif rss > _trimmed_at + TRIM_GROWTH_BYTES:
        release_free_memory()
