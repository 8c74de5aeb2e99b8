"""The bound on resident heap memory: glibc gives freed pages back, and the policy's schedule."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from hybridrec import heap

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="/proc/self/statm: Linux only")
# what the heap keeps and gives back is glibc's allocator's behaviour (musl or a preloaded
# allocator keeps other rules): tested where the C library is glibc
glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="glibc's allocator (malloc_trim, mallopt)")

# 256 MiB written through the heap (reuse_freed_memory: served by the heap, never trimmed), freed
# under a small live block that keeps it from the top, then released
RELEASE = """
import ctypes
from hybridrec.cpu import reuse_freed_memory
from hybridrec.heap import release_free_memory, resident_bytes
assert reuse_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 256 * 2**20
block = libc.malloc(size)
keeper = libc.malloc(4096)
ctypes.memset(block, 1, size)
libc.free(block)
held = resident_bytes()
release_free_memory()
print(held - resident_bytes())
"""


@linux_only
@glibc_only
def test_freed_heap_memory_stays_resident_until_released() -> None:
    released = int(subprocess.run([sys.executable, "-c", RELEASE], check=True,
                                  capture_output=True, text=True).stdout)
    assert released > 200 * 2**20


@linux_only
def test_resident_bytes_reads_statm(tmp_path: Path) -> None:
    assert heap.resident_bytes() > 0
    statm = tmp_path / "statm"
    statm.write_text("1000 25 3 1 0 20 0\n")
    assert heap.resident_bytes(statm) == 25 * heap.PAGE_BYTES
    assert heap.resident_bytes(tmp_path / "missing") is None


class FakeProcess:
    """Resident memory the test sets step by step; a release drops it to the next given value."""

    def __init__(self, after_releases: list[int]) -> None:
        self.resident, self.after_releases, self.released = 0, iter(after_releases), 0

    def read(self) -> int:
        return self.resident

    def release(self) -> bool:
        self.resident, self.released = next(self.after_releases), self.released + 1
        return True


def steps(bound: heap.ResidentMemoryBound, process: FakeProcess, resident: list[int]
          ) -> list[float | None]:
    limits = []
    for step, value in enumerate(resident, start=1):
        process.resident = value
        bound(1, step)
        limits.append(bound.limit)
    return limits


def test_the_bound_releases_past_its_factor_and_rises_with_memory_in_use(
        monkeypatch: pytest.MonkeyPatch) -> None:
    process = FakeProcess(after_releases=[700, 1400, 900])
    monkeypatch.setattr(heap, "resident_bytes", process.read)
    monkeypatch.setattr(heap, "release_free_memory", process.release)
    bound = heap.ResidentMemoryBound(factor=1.5, floor=0)
    limits = steps(bound, process, [1000, 1400, 1600, 1200, 1400, 2500, 2000, 3100])
    # 1.5 x the first step's 1000; 1600 passes it and is released to 700 (the bound stays);
    # 2500 passes it and 1400 stays in use (the bound rises to 1.5 x 1400); 3100 passes that
    assert limits == [1500] * 5 + [2100] * 3
    assert bound.releases == process.released == 3


def test_the_bound_has_a_floor_and_needs_a_factor_above_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    process = FakeProcess(after_releases=[])
    monkeypatch.setattr(heap, "resident_bytes", process.read)
    monkeypatch.setattr(heap, "release_free_memory", process.release)
    bound = heap.ResidentMemoryBound(factor=2, floor=5000)
    assert steps(bound, process, [100, 4000, 4900]) == [5000] * 3
    assert bound.releases == 0
    with pytest.raises(ValueError, match="factor"):
        heap.ResidentMemoryBound(factor=1.0)
