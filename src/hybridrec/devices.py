"""Where a job computes: what a device name means, the cores it may use, which GPU it claims.

:func:`resolve_device` turns ``training.device`` into a torch device, for training and evaluation
(the thread count of ``training.threads: 0`` is :func:`hybridrec.cpu.available_cores`).

One distinct GPU per concurrent job on a machine: Snakemake counts ``--resources gpu=N`` but never
says *which* GPU a job gets, so two training jobs on a two-GPU workstation would both open
``cuda:0``. Each job therefore claims a device by taking an exclusive ``flock`` on that device's
lock file and holds it while it trains. The kernel drops a ``flock`` when its process dies, SIGKILL
included, so a killed job never leaves a device claimed. A scheduler that sets
``CUDA_VISIBLE_DEVICES`` (SLURM does for ``--gpus``) narrows the candidates to what it granted; lock
files are named by the physical device (the entry in that variable), so jobs with different grants
never contend.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

from hybridrec.errors import HybridrecError

log = logging.getLogger(__name__)

LOCK_DIR_VARIABLE = "HYBRIDREC_GPU_LOCK_DIR"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; anything else as ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class DeviceBusyError(HybridrecError):
    """Every visible GPU stayed claimed by other jobs for the whole wait."""


def default_lock_dir() -> Path:
    """``$HYBRIDREC_GPU_LOCK_DIR``, else one folder in the machine's temporary directory."""
    configured = os.environ.get(LOCK_DIR_VARIABLE)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "hybridrec-gpu-locks"


def visible_gpus(device_count: int, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Physical identities of the GPUs CUDA numbers ``0 .. device_count - 1`` in this process.

    Without ``CUDA_VISIBLE_DEVICES`` they are the indices themselves. With it, entry ``i`` of the
    variable (an index or a ``GPU-<uuid>``) is what CUDA calls device ``i``; like CUDA, the list
    ends at the first negative index.
    """
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return [str(i) for i in range(device_count)]
    identities = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        identities.append(entry)
    return identities[:device_count]


@dataclass
class GpuClaim:
    """A held claim: CUDA's index for the device in this process and its physical identity."""

    index: int
    identity: str
    lock_file: IO[str]

    def release(self) -> None:
        fcntl.flock(self.lock_file, fcntl.LOCK_UN)
        self.lock_file.close()


def _lock_path(lock_dir: Path, identity: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in identity)
    return lock_dir / f"gpu-{safe}.lock"


def try_claim(identities: list[str], lock_dir: Path) -> GpuClaim | None:
    """Claim the first unclaimed device of ``identities``, or ``None`` when all are held."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index, identity in enumerate(identities):
        handle = open(_lock_path(lock_dir, identity), "a+")  # noqa: SIM115 (held while claimed)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")  # who holds it, for a user who looks
        handle.flush()
        return GpuClaim(index, identity, handle)
    return None


def claim_gpu(identities: list[str], lock_dir: Path, *, timeout: float = 3600.0,
              poll: float = 1.0) -> GpuClaim:
    """Claim a distinct device, waiting up to ``timeout`` seconds while all are held."""
    deadline = time.monotonic() + timeout
    claim = try_claim(identities, lock_dir)
    if claim is None:
        log.info("all %d visible GPUs (%s) are claimed by other jobs; waiting up to %.0f s",
                 len(identities), ", ".join(identities), timeout)
    while claim is None:
        if time.monotonic() >= deadline:
            raise DeviceBusyError(
                f"every visible GPU ({', '.join(identities)}) stayed claimed for {timeout:.0f} s; "
                f"the holders' pids are in {lock_dir}/gpu-*.lock. Run fewer GPU jobs at once "
                f"(snakemake --resources gpu=N) or set training.device to cpu")
        time.sleep(poll)
        claim = try_claim(identities, lock_dir)
    return claim


@contextmanager
def claim_device(requested: str, *, lock_dir: Path | None = None, timeout: float = 3600.0,
                 device_count: int | None = None,
                 environ: Mapping[str, str] = os.environ) -> Iterator[torch.device]:
    """The device a job should use for ``training.device = requested``, held until exit.

    ``cpu`` and an explicit ``cuda:N`` are used as given. ``auto`` and ``cuda`` claim a distinct
    visible GPU; ``auto`` falls back to the CPU when there is none. ``device_count`` defaults
    to what torch sees (injected by tests, which run without a GPU).
    """
    if requested == "cpu" or requested.startswith("cuda:"):
        yield torch.device(requested)
        return
    if device_count is None:
        device_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    identities = visible_gpus(device_count, environ)
    if not identities:
        if requested == "cuda":
            raise HybridrecError("training.device is 'cuda' but no CUDA device is visible")
        yield torch.device("cpu")
        return
    claim = claim_gpu(identities, lock_dir or default_lock_dir(), timeout=timeout)
    log.info("claimed GPU %s (cuda:%d of %d visible)", claim.identity, claim.index,
             len(identities))
    try:
        yield torch.device("cuda", claim.index)
    finally:
        claim.release()
