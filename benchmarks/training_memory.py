"""Resident memory over training steps, under four heap settings of glibc's allocator.

``hybridrec.cpu.reuse_freed_memory`` (called by ``configure_cpu_runtime``, which the train
rule runs first) serves blocks up to 1 GiB from the heap and never trims it, so freed
activations are reused without fresh page faults. This script trains one model with the
training loop's own ``train_step`` (``training_throughput.Trainer``, one thread) on a
preprocessed training split and prints the process's RSS every 5 steps and its CPU seconds,
with the heap

- ``reuse``: as the train rule runs it;
- ``default``: glibc's defaults put back (mmap and trim thresholds 128 KiB);
- ``trimN``: ``reuse`` plus ``malloc_trim(0)`` every N seconds from a thread;
- ``bounded``: ``reuse`` plus ``hybridrec.heap.ResidentMemoryBound`` after every step, as the
  train rule runs it since the bound was added.

    python benchmarks/training_memory.py --model sasrec --steps 40 --heap reuse \\
        --train results/data/ml-100k/split/train.parquet

Run one heap per process (the settings are the process's).
"""

from __future__ import annotations

from hybridrec.cpu import configure_cpu_runtime

configure_cpu_runtime()  # as the train rule: before torch loads MKL

import argparse  # noqa: E402
import ctypes  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from training_throughput import Trainer, chosen_setup, train_parquet_part  # noqa: E402

from hybridrec.heap import ResidentMemoryBound  # noqa: E402

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
GLIBC_DEFAULT = 128 * 1024


def rss_mib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) // 1024


def set_heap(heap: str) -> None:
    libc = ctypes.CDLL("libc.so.6")
    if heap == "default":
        libc.mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT)
        libc.mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT)
    elif heap.startswith("trim"):
        every = float(heap[len("trim"):])

        def trim_forever() -> None:
            while True:
                time.sleep(every)
                libc.malloc_trim(0)

        threading.Thread(target=trim_forever, daemon=True).start()
    elif heap not in ("reuse", "bounded"):
        raise SystemExit(f"--heap: reuse, bounded, default or trimN (seconds), got {heap!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--heap", default="reuse")
    parser.add_argument("--train", type=Path, required=True, help="a split/train.parquet")
    args = parser.parse_args()

    set_heap(args.heap)
    torch.set_num_threads(1)
    data, source = train_parquet_part(args.train)
    settings = argparse.Namespace(max_len=None, hidden=None, batch=None, loss=None)
    trainer = Trainer(chosen_setup(args.model, settings), data)
    start = time.process_time()
    samples = []
    bound = ResidentMemoryBound() if args.heap == "bounded" else None
    for step in range(1, args.steps + 1):
        trainer.steps(1, trim=True)
        if bound is not None:
            bound(1, step)
        if step % 5 == 0:
            samples.append(rss_mib())
    print(f"{args.model} on {source}, heap {args.heap}: {args.steps} steps in "
          f"{time.process_time() - start:.1f} CPU-s; RSS MiB every 5 steps: {samples}"
          + (f"; {bound.releases} releases" if bound is not None else ""))


if __name__ == "__main__":
    main()
