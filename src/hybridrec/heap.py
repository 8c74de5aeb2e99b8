"""A bound on the memory that glibc's heap keeps resident for reuse during training.

:func:`hybridrec.cpu.reuse_freed_memory` (set by every training and evaluation job) serves blocks
up to 1 GiB from the heap and never gives freed memory back, so the activations of one step are
reused by the next without fresh page faults. Trimmed training allocates tensors of a different
size in every length group; the heap fragments, new blocks extend it, and the freed pages stay
resident: a trimmed SASRec or LinRec on MovieLens-100K grew about 44 MB per step without bound,
to 13.8 GB (docs/benchmarks.md, "The price of heap reuse").

:class:`ResidentMemoryBound` keeps the reuse and bounds its cost. Called after every optimiser
step (the training loop's ``on_step`` hook), it reads the process's resident memory and, once that
exceeds ``factor`` times the first step's, returns the heap's free pages to the kernel with
``malloc_trim(0)``. The next steps fault in what they use again, and the heap keeps serving them;
the bound rises to ``factor`` times what is resident after a release, so memory that is really
in use never makes it release at every step. Nothing it does touches a value training computes.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

STATM = Path("/proc/self/statm")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(statm: Path = STATM) -> int | None:
    """This process's resident memory (``/proc/self/statm``), or ``None`` where unreadable."""
    try:
        return int(statm.read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


def release_free_memory() -> bool:
    """glibc's ``malloc_trim(0)``: give every free page of the heap back to the kernel. Returns
    whether memory was released (False also where the C library is not glibc)."""
    try:
        malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(malloc_trim(0))


class ResidentMemoryBound:
    """Release the heap's free pages whenever resident memory passes ``factor`` times what it
    was after the first step (at least ``floor`` bytes); an ``on_step(epoch, step)`` hook."""

    def __init__(self, factor: float = 1.5, floor: int = 2**29) -> None:
        if factor <= 1:
            raise ValueError(f"factor must exceed 1, got {factor}")
        self.factor, self.floor = factor, floor
        self.limit: float | None = None
        self.releases = 0

    def __call__(self, epoch: int, step: int) -> None:
        resident = resident_bytes()
        if resident is None:
            return
        if self.limit is None:
            self.limit = max(self.factor * resident, self.floor)
        elif resident > self.limit:
            release_free_memory()
            self.releases += 1
            after = resident_bytes() or 0
            self.limit = max(self.limit, self.factor * after)
            log.debug("epoch %d step %d: resident %.0f MiB > bound, released free heap pages "
                      "(now %.0f MiB, bound %.0f MiB)", epoch, step, resident / 2**20,
                      after / 2**20, self.limit / 2**20)
