"""Run a block with a capped number of compute threads (PyTorch intra-op and BLAS).

The hybrid stage multiplies small matrices: there, a second thread mostly adds synchronisation,
and on a busy machine spinning OpenMP/OpenBLAS workers slow each call down by an order of
magnitude. Parallelism belongs one level up (one search shard per core), so the stage's heavy
functions run single-threaded by default and restore the previous settings on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def limit_threads(threads: int = 1) -> Iterator[None]:
    """Cap PyTorch's and the BLAS libraries' threads to ``threads`` inside the block."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)
