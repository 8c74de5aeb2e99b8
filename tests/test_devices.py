"""GPU claiming without a GPU: distinct devices per job, scheduler grants, release on SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from hybridrec.devices import (
    DeviceBusyError,
    claim_device,
    claim_gpu,
    try_claim,
    visible_gpus,
)
from hybridrec.errors import HybridrecError


@pytest.mark.parametrize(("value", "count", "expected"), [
    (None, 3, ["0", "1", "2"]),
    ("2,3", 2, ["2", "3"]),
    ("3, 1", 2, ["3", "1"]),
    ("GPU-8f2c,GPU-77aa", 2, ["GPU-8f2c", "GPU-77aa"]),
    ("1,-1,2", 3, ["1"]),  # CUDA stops at the first negative index
    ("", 0, []),
    ("0,1,2,3", 2, ["0", "1"]),  # never more than torch counts
])
def test_visible_gpus_follow_cuda_visible_devices(value, count, expected):
    environ = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    assert visible_gpus(count, environ) == expected


def test_concurrent_claims_get_distinct_devices(tmp_path):
    first = try_claim(["0", "1"], tmp_path)
    second = try_claim(["0", "1"], tmp_path)
    assert first is not None and second is not None
    assert {first.index, second.index} == {0, 1}
    assert try_claim(["0", "1"], tmp_path) is None  # both held
    first.release()
    third = try_claim(["0", "1"], tmp_path)
    assert third is not None and third.index == first.index
    second.release()
    third.release()


def test_a_full_machine_waits_then_names_the_lock_folder(tmp_path):
    held = try_claim(["0"], tmp_path)
    assert held is not None
    with pytest.raises(DeviceBusyError, match=str(tmp_path)):
        claim_gpu(["0"], tmp_path, timeout=0.3, poll=0.05)
    threading.Timer(0.3, held.release).start()
    claim = claim_gpu(["0"], tmp_path, timeout=10, poll=0.05)  # granted once released
    assert claim.identity == "0"
    claim.release()


def test_jobs_with_different_scheduler_grants_do_not_contend(tmp_path):
    """SLURM gave one job GPU 2 and another GPU 3: each sees its own as cuda:0."""
    with claim_device("auto", lock_dir=tmp_path, device_count=1,
                      environ={"CUDA_VISIBLE_DEVICES": "2"}) as one, \
         claim_device("auto", lock_dir=tmp_path, device_count=1, timeout=0.2,
                      environ={"CUDA_VISIBLE_DEVICES": "3"}) as other:
        assert one == other == torch.device("cuda", 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-2.lock", "gpu-3.lock"]


def test_claim_device_resolves_the_configured_device(tmp_path):
    with claim_device("auto", lock_dir=tmp_path, device_count=0) as device:
        assert device == torch.device("cpu")
    with claim_device("cpu", lock_dir=tmp_path, device_count=4) as device:
        assert device == torch.device("cpu")
    with claim_device("cuda:3", lock_dir=tmp_path, device_count=4) as device:
        assert device == torch.device("cuda", 3)  # pinned by the user: no claim
    with pytest.raises(HybridrecError, match="no CUDA device"):
        with claim_device("cuda", lock_dir=tmp_path, device_count=0):
            pass
    with claim_device("auto", lock_dir=tmp_path, device_count=2, environ={}) as a, \
         claim_device("cuda", lock_dir=tmp_path, device_count=2, environ={}) as b:
        assert {a.index, b.index} == {0, 1}


def test_a_job_killed_with_sigkill_releases_its_device(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from hybridrec.devices import try_claim
        claim = try_claim(["0"], Path({str(tmp_path)!r}))
        print(claim.index, flush=True)
        time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "0"
    assert try_claim(["0"], tmp_path) is None
    assert f"pid {holder.pid}" in (tmp_path / "gpu-0.lock").read_text()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 5
    claim = try_claim(["0"], tmp_path)
    while claim is None and time.monotonic() < deadline:
        time.sleep(0.05)
        claim = try_claim(["0"], tmp_path)
    assert claim is not None, "the killed job's claim was not released"
    claim.release()
