"""Training throughput of Mamba4Rec with each selective-scan form (fast, parallel, reference).

One training step = forward, softmax cross-entropy over all items at the last position,
backward, Adam step, on random full-length windows, at the paper's settings (d = 64, one layer,
S = 32, K = 4, expand 2). Throughput = batch / median step time after ``--warmup`` untimed
steps, by the wall clock (``seq/s``) and by this process's CPU time (``seq/CPU-s``, robust to
other processes sharing the cores).

    python benchmarks/mamba_scan.py                            # CPU, N = 50 and 200
    python benchmarks/mamba_scan.py --device cuda --batch 2048 --lengths 50,200,400

Scans (hybridrec.models.mamba.SCANS): ``sequential`` (the fast path: in-place custom autograd
function), ``parallel`` (the same function with a Hillis-Steele scan, no loop over N) and
``reference`` (a loop over N differentiated by autograd). Prints one line per (N, scan) and the
ratios to the reference.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from hybridrec.models import build_model
from hybridrec.models.mamba import SCANS, SelectiveSSM


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--lengths", default="50,200", help="comma-separated N values")
    p.add_argument("--batch", type=int, default=64, help="sequences per step")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--num-items", type=int, default=12101, help="catalogue (Beauty: 12,101)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p.parse_args(argv)


def step_times(n: int, scan: str, args: argparse.Namespace) -> tuple[float, float]:
    """Median wall and CPU seconds of one training step at window length n."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model("mamba4rec", args.num_items, max_len=n).to(device).train()
    for module in model.modules():
        if isinstance(module, SelectiveSSM):
            module.scan = scan
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = torch.randint(1, args.num_items + 1, (args.batch, n), device=device)
    targets = torch.randint(1, args.num_items + 1, (args.batch,), device=device)
    walls, cpus = [], []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        loss = F.cross_entropy(model.logits(model.last_hidden(inputs)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"mamba4rec training step, device {args.device}, batch {args.batch}, "
          f"{args.threads} thread(s), torch {torch.__version__}")
    for n in (int(v) for v in args.lengths.split(",")):
        rates = {}
        for scan in SCANS:
            wall, cpu = step_times(n, scan, args)
            rates[scan] = args.batch / cpu
            print(f"N={n:4d}  {scan:10s}  {args.batch / wall:9.1f} seq/s  "
                  f"{args.batch / cpu:9.1f} seq/CPU-s")
        print(f"N={n:4d}  CPU-time speed-up over the reference: "
              + ", ".join(f"{scan} {rates[scan] / rates['reference']:.2f}x"
                          for scan in SCANS[:-1]))

if __name__ == "__main__":
    main()
