"""Keep freed memory for reuse instead of handing it back to the kernel after every array.

A grade allocates and frees the same large arrays over and over (inputs, outputs, comparison
temporaries; a GPT-2-sized case moves several MB per call). glibc serves allocations above an
adaptive threshold with mmap and returns them with munmap, and trims the heap's top when it is
free, so the next array of that size is faulted in page by page again: in a class run that was
about a fifth of the kernel time. Raising both thresholds keeps that memory in the process, where
the next allocation reuses it. Processes forked afterwards (grader processes, zygotes, case
children) inherit the setting. Nothing changes where glibc's mallopt is not available.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest accepted value on 64-bit
TRIM_THRESHOLD = 512 << 20


def keep_freed_memory() -> bool:
    """Serve allocations up to 32 MiB from the heap and keep up to 512 MiB of freed heap; True if
    glibc accepted both."""
    try:
        # the symbols already loaded in this process (libc's among them): find_library("c") would
        # start /sbin/ldconfig, at every grading's start, on the way to the same function
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
