"""Training throughput of FMLP-Rec with the official Beauty settings, against a matmul bound.

    python benchmarks/training_throughput.py [--steps 200] [--threads N] [--device cpu]

Settings: batch 256, N = 50, d = 64, 2 blocks, dropout 0.5, BCE against one negative, Adam
lr 1e-3; samples = every training prefix of ``../shared/datasets/beauty/Beauty.txt`` (all but the
last two items per user), or synthetic data of the same size when that file is absent. Timed:
our batch builder (shuffle + negatives, amortised from the epoch start) and our loop's
``train_step``, for ``--steps`` steps after a warm-up.

Bound: forward FLOPs per sequence are estimated for the FFN matmuls, the FFTs and the complex
filter product, the position-embedding add and the two BCE dot products; backward counts 2x
forward. The matmul-bound rate is that budget at the GFLOP/s of a large sgemm on this machine;
a second bound uses the GFLOP/s of the FFN's own matmul shapes (forward and backward).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

from hybridrec.devices import available_cores
from hybridrec.models import build_model
from hybridrec.training.batches import Sequences, TrainingBatches
from hybridrec.training.config import TrainConfig
from hybridrec.training.loop import make_optimizer, train_step

REPO = Path(__file__).resolve().parents[1]
BEAUTY = REPO.parent / "shared" / "datasets" / "beauty" / "Beauty.txt"
USERS, ITEMS, INTERACTIONS = 22_363, 12_101, 198_502
N, D, LAYERS, BATCH = 50, 64, 2, 256


def beauty_training_part(path: Path) -> tuple[Sequences, str]:
    seqs = []
    for line in path.read_text().splitlines():
        ids = [int(v) for v in line.split()[1:]]
        seqs.append(ids[:-2])  # leave-one-out: last = test, second to last = validation
    num_items = max(max(s, default=0) for s in seqs)
    return Sequences.from_lists(seqs, num_items), f"Beauty.txt ({path})"


def synthetic_training_part(seed: int = 0) -> tuple[Sequences, str]:
    """Same users, items and interactions as Beauty 5-core: lengths >= 5, mean 8.9."""
    g = torch.Generator().manual_seed(seed)
    extra = torch.distributions.Geometric(probs=torch.tensor(1 / (INTERACTIONS / USERS - 4)))
    torch.manual_seed(seed)
    lengths = 5 + extra.sample((USERS,)).long() - 1
    lengths = lengths.clamp_max(200)
    items = torch.randint(1, ITEMS + 1, (int(lengths.sum()),), generator=g)
    offsets = torch.zeros(USERS + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, 0)
    train_lists = [items[offsets[u]:offsets[u + 1] - 2].tolist() for u in range(USERS)]
    return Sequences.from_lists(train_lists, ITEMS), "synthetic (Beauty-sized)"


def forward_flops_per_sequence(n: int = N, d: int = D, layers: int = LAYERS) -> dict[str, float]:
    """Forward FLOPs of one length-n sequence (multiply-add = 2 FLOPs)."""
    ffn = layers * n * 2 * (d * 4 * d + 4 * d * d)
    # real FFT of length n ~ 2.5 n log2 n per channel, forward + inverse, plus the complex
    # product over n/2+1 bins (6 FLOPs each)
    fft = layers * d * (2 * 2.5 * n * math.log2(n) + 6 * (n // 2 + 1))
    embedding = n * d  # position embedding add (the item lookup is a gather)
    bce = 2 * 2 * d  # positive and negative dot products at the last position
    return {"ffn": ffn, "fft": fft, "embedding": embedding, "bce": bce}


class Clock:
    """Wall and process-CPU seconds of a block (CPU time is robust to other processes' load)."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def sgemm_gflops(size: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """(wall, CPU-time) GFLOP/s of a large square float32 matmul."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    with Clock() as clock:
        for _ in range(repeats):
            torch.matmul(a, b)
    flops = 2 * size**3 * repeats
    return flops / clock.wall / 1e9, flops / clock.cpu / 1e9


def ffn_shape_gflops(repeats: int = 20) -> tuple[float, float]:
    """(wall, CPU-time) GFLOP/s of the FFN matmuls at the benchmark's shapes, fwd and bwd."""
    rows = BATCH * N
    x, w1, w2 = torch.randn(rows, D), torch.randn(D, 4 * D), torch.randn(4 * D, D)
    gy = torch.randn(rows, D)

    def once() -> None:
        h = x @ w1  # (rows, 4d)
        _ = h @ w2  # (rows, d): forward
        gh = gy @ w2.T  # backward: grads of h, w2, x, w1
        _ = h.T @ gy
        _ = gh @ w1.T
        _ = x.T @ gh

    once()
    with Clock() as clock:
        for _ in range(repeats):
            once()
    flops = 6 * 2 * rows * D * 4 * D * repeats  # 6 matmuls of rows x d x 4d
    return flops / clock.wall / 1e9, flops / clock.cpu / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps (batches)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=available_cores())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--synthetic", action="store_true", help="ignore Beauty.txt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    data, source = (beauty_training_part(BEAUTY) if BEAUTY.exists() and not args.synthetic
                    else synthetic_training_part())
    batches = TrainingBatches(data, "prefix", N, negatives=True)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"({os.cpu_count()} CPUs)")
    print(f"data: {source}: {data.num_users} users, {data.num_items} items, "
          f"{len(batches)} training prefixes; threads {args.threads}, device {device}")

    torch.manual_seed(0)
    model = build_model("fmlp", data.num_items, max_len=N, hidden_size=D, n_layers=LAYERS,
                        dropout=0.5).to(device).train()
    optimizer = make_optimizer(model, TrainConfig.fmlp_official())
    generator = torch.Generator().manual_seed(0)

    for i, batch in enumerate(batches.epoch(BATCH, generator)):
        if i == args.warmup:
            break
        train_step(model, optimizer, batch.to(device), loss="bce")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    sequences = 0
    with Clock() as clock:  # includes the epoch's shuffle and negative sampling
        for i, batch in enumerate(batches.epoch(BATCH, generator)):
            if i == args.steps:
                break
            train_step(model, optimizer, batch.to(device), loss="bce")
            sequences += len(batch)
        sync()
    rate, cpu_rate = sequences / clock.wall, sequences / clock.cpu

    parts = forward_flops_per_sequence()
    per_sequence = 3 * sum(parts.values())  # backward ~ 2x forward
    gemm, gemm_cpu = sgemm_gflops()
    shaped, shaped_cpu = ffn_shape_gflops()
    bound, bound_cpu = gemm * 1e9 / per_sequence, gemm_cpu * 1e9 / per_sequence
    shaped_bound = shaped * 1e9 / per_sequence
    print("forward MFLOP/seq: " + ", ".join(f"{k} {v / 1e6:.3f}" for k, v in parts.items())
          + f"; total fwd+bwd {per_sequence / 1e6:.2f} MFLOP/seq")
    print(f"sgemm 2048^3: {gemm:.1f} GFLOP/s wall [{gemm_cpu:.1f} per CPU-second]; FFN-shaped "
          f"matmuls (fwd+bwd, {BATCH * N}x{D}x{4 * D}): {shaped:.1f} [{shaped_cpu:.1f}] GFLOP/s")
    print(f"timed: {sequences} sequences in {clock.wall:.2f} s wall, {clock.cpu:.2f} CPU-s; "
          f"{rate * per_sequence / 1e9:.1f} GFLOP/s effective")
    print("figures: wall clock [per CPU-second of this process, robust to other load]")
    print(f"seq/s {rate:.0f} [{cpu_rate:.0f}]")
    print(f"matmul-bound seq/s {bound:.0f} [{bound_cpu:.0f}] (large sgemm); "
          f"{shaped_bound:.0f} (FFN shapes)")
    print(f"fraction {rate / bound:.3f} [{cpu_rate / bound_cpu:.3f}] (large sgemm); "
          f"{rate / shaped_bound:.3f} (FFN shapes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
