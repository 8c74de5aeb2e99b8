"""CPU runtime: threads from affinity and cgroup quota; MKL sums independent of the thread count."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from hybridrec import cpu


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_tightest_of_the_process_cgroup_and_its_parents(
        tmp_path: Path) -> None:
    write(tmp_path / "proc", "0::/slurm/job7\n")
    write(tmp_path / "fs/slurm/job7/cpu.max", "max 100000\n")
    write(tmp_path / "fs/slurm/cpu.max", "150000 100000\n")
    write(tmp_path / "fs/cpu.max", "max 100000\n")
    assert cpu.cgroup_cpu_limit(tmp_path / "fs", tmp_path / "proc") == 1.5


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    write(tmp_path / "proc", "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n")
    write(tmp_path / "fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n")
    write(tmp_path / "fs/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    assert cpu.cgroup_cpu_limit(tmp_path / "fs", tmp_path / "proc") == 3.0
    write(tmp_path / "fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n")
    assert cpu.cgroup_cpu_limit(tmp_path / "fs", tmp_path / "proc") is None
    assert cpu.cgroup_cpu_limit(tmp_path / "missing", tmp_path / "no-proc") is None


def test_available_cores_is_capped_by_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setattr(cpu, "cgroup_cpu_limit", lambda: None)
    assert cpu.available_cores() == 4
    monkeypatch.setattr(cpu, "cgroup_cpu_limit", lambda: 2.5)
    assert cpu.available_cores() == 2
    monkeypatch.setattr(cpu, "cgroup_cpu_limit", lambda: 0.5)
    assert cpu.available_cores() == 1


def test_configure_cpu_runtime_keeps_values_already_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delenv("MKL_CBWR", raising=False)
    assert cpu.configure_cpu_runtime() == {"MKL_CBWR": "AUTO,STRICT",
                                           "OMP_WAIT_POLICY": "ACTIVE"}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_reuse_freed_memory_is_accepted_by_glibc() -> None:
    assert cpu.reuse_freed_memory()


