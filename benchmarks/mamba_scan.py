"""Training throughput and peak memory of Mamba4Rec with each selective-scan form.

One training step = forward, softmax cross-entropy over all items at the last position,
backward, Adam step, on random full-length windows, at the paper's settings (d = 64, one layer,
S = 32, K = 4, expand 2). Throughput = batch / median step time after ``--warmup`` untimed
steps, by the wall clock (``seq/s``) and by this process's CPU time (``seq/CPU-s``, all threads,
robust to other processes sharing the cores).

Peak memory: every (N, scan) runs in a fresh subprocess (benchmarks/isolated.py), so the
process's resident high-water mark (``ru_maxrss`` of ``RUSAGE_SELF``, read by the child itself)
is that configuration's own. ``peak RSS`` is that mark after the steps (interpreter, torch,
numba, model, data and the steps); ``step RSS`` is its growth over the mark taken just before
the first step, i.e. what the training steps add (activations, scan temporaries, gradients,
Adam's state). numba and the fused kernels are loaded before that first mark for every scan,
so neither the import nor a first-use compilation (LLVM's memory) counts against a step. On
CUDA both figures are ``torch.cuda.max_memory_allocated`` instead (peak, and its growth).

    python benchmarks/mamba_scan.py                            # CPU, N = 50 and 200, all scans
    python benchmarks/mamba_scan.py --batch 256 --lengths 50 --scans fused,sequential
    python benchmarks/mamba_scan.py --device cuda --batch 2048 --lengths 50,200,400

Scans (hybridrec.models.mamba.SCANS): ``fused`` (the default: one numba kernel, no
(B, N, Di, S) tensor; on CUDA it runs ``sequential``), ``sequential`` (the PyTorch fast path:
in-place custom autograd function), ``parallel`` (the same function with a Hillis-Steele scan,
no loop over N) and ``reference`` (a loop over N differentiated by autograd). Prints one line
per (N, scan) and the CPU-time speed-ups over the reference (over the first scan listed when
the reference is not run).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from isolated import run_settings, serve

from hybridrec.models import build_model
from hybridrec.models.fused_scan import fused_selective_scan
from hybridrec.models.mamba import SCANS, SelectiveSSM


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--lengths", default="50,200", help="comma-separated N values")
    p.add_argument("--scans", default=",".join(SCANS), help=f"comma-separated, from {SCANS}")
    p.add_argument("--batch", type=int, default=64, help="sequences per step")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--num-items", type=int, default=12101, help="catalogue (Beauty: 12,101)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def peak_mib(device: torch.device) -> float:
    """The process's resident high-water mark (CPU; Linux reports KiB), or CUDA's peak."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(cfg: dict[str, Any]) -> dict[str, Any]:
    """One (N, scan) in this (fresh) process: median step times and peak memory."""
    torch.set_num_threads(cfg["threads"])
    device = torch.device(cfg["device"])
    n, batch = cfg["length"], cfg["batch"]
    tiny = [torch.zeros(shape, requires_grad=True) for shape in
            [(1, 2, 3), (1, 2, 3), (3, 2), (1, 2, 2), (1, 2, 2), (3,)]]
    fused_selective_scan(*tiny).sum().backward()  # load (or compile) the kernels: not a step
    torch.manual_seed(0)
    model = build_model("mamba4rec", cfg["num_items"], max_len=n).to(device).train()
    for module in model.modules():
        if isinstance(module, SelectiveSSM):
            module.scan = cfg["scan"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = torch.randint(1, cfg["num_items"] + 1, (batch, n), device=device)
    targets = torch.randint(1, cfg["num_items"] + 1, (batch,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = peak_mib(device)
    walls, cpus = [], []
    for i in range(cfg["warmup"] + cfg["steps"]):
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        loss = F.cross_entropy(model.logits(model.last_hidden(inputs)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= cfg["warmup"]:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    peak = peak_mib(device)
    return {"seq_per_s": batch / statistics.median(walls),
            "seq_per_cpu_s": batch / statistics.median(cpus),
            "peak_mib": peak, "step_mib": peak - base}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        serve(run_one)
        return
    scans = [s.strip() for s in args.scans.split(",")]
    unknown = set(scans) - set(SCANS)
    if unknown:
        raise SystemExit(f"unknown scans {sorted(unknown)}; choose from {SCANS}")
    baseline = "reference" if "reference" in scans else scans[0]
    print(f"mamba4rec training step, device {args.device}, batch {args.batch}, "
          f"{args.threads} thread(s), torch {torch.__version__}; one process per line")
    for n in (int(v) for v in args.lengths.split(",")):
        rates = {}
        for scan in scans:
            cfg = {"length": n, "scan": scan, "device": args.device, "batch": args.batch,
                   "steps": args.steps, "warmup": args.warmup, "num_items": args.num_items,
                   "threads": args.threads}
            r = run_settings([sys.executable, __file__, "--worker"], [cfg], cap_s=3600)[0]
            if r["status"] != "ok":
                print(f"N={n:4d}  {scan:10s}  {r['status']}: {r.get('error')}")
                continue
            rates[scan] = r["seq_per_cpu_s"]
            print(f"N={n:4d}  {scan:10s}  {r['seq_per_s']:9.1f} seq/s  "
                  f"{r['seq_per_cpu_s']:9.1f} seq/CPU-s  peak RSS {r['peak_mib']:8.0f} MiB  "
                  f"step RSS {r['step_mib']:8.0f} MiB")
        if baseline in rates:
            print(f"N={n:4d}  CPU-time speed-up over {baseline}: "
                  + ", ".join(f"{scan} {rates[scan] / rates[baseline]:.2f}x"
                              for scan in rates if scan != baseline))


if __name__ == "__main__":
    main()
