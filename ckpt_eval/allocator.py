"""Keep the memory a torch job frees, instead of handing it back to the kernel after every batch.

glibc serves each allocation above its mmap threshold (at most 32 MiB) with a fresh mmap and
unmaps it when freed. An Inception batch of 32 allocates activations of up to 91 MB each, so
every batch took its memory back from the kernel zeroed: about 8,000 page faults per image,
15% of the job's CPU time in the kernel, and the forward ran at 21 images/s instead of 27 on
this project's 2-CPU machine (bench/RESULTS.md, 'What was tried'). With mmap off for this process
and a high trim threshold, a freed buffer is reused by the next batch. The numbers are the
same bits (only where the memory comes from changes, `tests/test_allocator.py`); the peak
resident memory grows by about the largest batch's activations (the bench's `memory` figure
measures the jobs' peaks).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # bytes free at the heap's top before glibc gives them back


def keep_freed_memory() -> bool:
    """Whether the setting took (glibc only; elsewhere the allocator is left as it is)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False
