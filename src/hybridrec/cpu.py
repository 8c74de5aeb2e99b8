"""How a process uses the CPU: its thread count, its math runtime, capped thread blocks.

Two settings must be in place before torch loads its OpenMP and MKL runtimes, so an entry point
calls :func:`configure_cpu_runtime` before anything imports torch (this module does not):

- ``MKL_CBWR=AUTO,STRICT``: MKL's strict conditional-numerical-reproducibility mode. Without it
  MKL splits the inner dimension of small-output sgemms (every Linear weight gradient: d x d
  outputs summed over B * N rows) across threads, so 1 and 2 threads trained different weights;
  in strict mode the sums are the same for any thread count (tests/test_models.py,
  tests/test_trimming.py), at no measured cost (docs/benchmarks.md).
- ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP workers sleep instead of spinning. When another
  process holds a core, a spinning worker competes with it for the core that the thread it
  waits for needs; 2-thread training then collapsed to a third of its speed.

Both are defaults: a value already in the environment is kept. Neither changes which sums are
computed for a given thread count, so results do not depend on them beyond that.

A third setting, :func:`reuse_freed_memory`, can be made at any time: glibc's allocator serves
blocks above its mmap threshold (at most 32 MiB by default) with fresh pages that the kernel
zero-fills on first touch, and a training step allocates and frees dozens of 25-100 MB
activations, so memory-bound kernels spent half their time in page faults (docs/benchmarks.md).

:func:`limit_threads` caps PyTorch's and the BLAS libraries' threads inside a block: the stages
that multiply small matrices (the hybrid's gates, the text encoder) run single-threaded, where a
second thread mostly adds synchronisation and spinning workers slow each call on a busy
machine; their parallelism is one level up (one search shard per core).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

RUNTIME_DEFAULTS: dict[str, str] = {"MKL_CBWR": "AUTO,STRICT", "OMP_WAIT_POLICY": "PASSIVE"}
CGROUP_ROOT = Path("/sys/fs/cgroup")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def configure_cpu_runtime() -> dict[str, str]:
    """Set :data:`RUNTIME_DEFAULTS` where the environment has no value; returns what is in force.

    Logs a warning when torch is already imported: its runtimes then keep their settings.
    """
    for key, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(key, value)
    reuse_freed_memory()
    if "torch" in sys.modules:
        log.warning("configure_cpu_runtime() ran after torch was imported: %s may not apply",
                    ", ".join(RUNTIME_DEFAULTS))
    return {key: os.environ[key] for key in RUNTIME_DEFAULTS}


def reuse_freed_memory(mmap_threshold: int = 2**30) -> bool:
    """glibc: serve blocks up to ``mmap_threshold`` bytes from the heap and keep freed memory for
    reuse (trim threshold 2 GiB) instead of returning it to the kernel. The process's resident
    memory then stays near its peak. Returns False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
                and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def quota_in_folder(folder: Path, v2: bool) -> float | None:
    """CPUs per period one cgroup folder allows (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``); ``None`` when unlimited or unreadable."""
    try:
        if v2:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        else:
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[tuple[Path, bool]]:
    """``(folder, is_v2)`` of this process's CPU cgroup and its ancestors up to the mount."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    folders: list[tuple[Path, bool]] = []
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            mount, v2 = root, True
        elif "cpu" in controllers.split(","):
            mount, v2 = root / controllers, False
            if not mount.exists():
                mount = root / "cpu"
        else:
            continue
        folder = mount / path.lstrip("/")
        folders.append((folder, v2))
        while folder != mount and mount in folder.parents:
            folder = folder.parent
            folders.append((folder, v2))
    return folders


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
                     ) -> float | None:
    """The tightest CPU quota on this process's cgroup and its ancestors, in CPUs, or ``None``.

    Reads cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); inside a
    container whose cgroup path is not visible, the root's files are the container's own.
    """
    places = [*_cgroup_folders(root, proc_cgroup), (root, True), (root / "cpu", False)]
    limits = [q for folder, v2 in places if (q := quota_in_folder(folder, v2)) is not None]
    return min(limits) if limits else None


def available_cores() -> int:
    """Threads this process may really run at once: its CPU affinity, capped by its cgroup's CPU
    quota (rounded down, at least 1). Deterministic for a given job, never read from the load."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return cores


@contextlib.contextmanager
def limit_threads(threads: int = 1) -> Iterator[None]:
    """Cap PyTorch's and the BLAS libraries' threads to ``threads`` inside the block (torch is
    imported here, not at the top: :func:`configure_cpu_runtime` must run before it loads)."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)
