"""Training throughput and peak memory of LinRec vs SASRec as the window length N grows.

One training step = forward, softmax cross-entropy over all items at the last position,
backward, Adam step, on random full-length windows (no padding: the worst case for both).
Throughput = batch / median step time (after ``--warmup`` untimed steps), by the wall clock
(``seq/s``) and by this process's CPU time (``seq/CPU-s``: all threads' CPU seconds, robust
to other processes sharing the cores; on CUDA it only counts the host side).
Every (model, N) runs in a fresh subprocess so that peak memory is its own:

- CUDA: ``torch.cuda.max_memory_allocated`` minus what was allocated before the first step;
- CPU: ``ru_maxrss`` after the steps minus ``ru_maxrss`` before them (the growth of the
  process's resident high-water mark, i.e. activations, gradients and optimizer state).

    python benchmarks/attention_scaling.py                      # CPU or CUDA, whichever is here
    python benchmarks/attention_scaling.py --device cuda --lengths 50,200,800,3200 --steps 20

Writes ``attention_scaling_<device>.csv`` and ``.png`` to ``--out-dir`` and prints a table.
The CPU defaults (batch 32, 1 + at least 2 steps and 2 s per configuration) take about two
minutes on 2 cores; SASRec at N = 800 then peaks near 5 GB: with attention dropout, torch's CPU
``scaled_dot_product_attention`` takes its math path and keeps the (B, h, N, N) probabilities
(without dropout its flash kernel would not); on CUDA the memory-efficient kernel handles both.
Models: ``linrec`` (official norm, non-causal, last position), ``linrec-causal``, ``sasrec``
(fused ``scaled_dot_product_attention``), ``sasrec-explicit`` (the readable N x N path).
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import sys
import time
from pathlib import Path

from isolated import run_settings, serve

MODEL_VARIANTS = {
    "linrec": ("linrec", {}),
    "linrec-causal": ("linrec", {"causal": True}),
    "sasrec": ("sasrec", {}),
    "sasrec-explicit": ("sasrec", {}),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda if available)")
    p.add_argument("--lengths", default="50,100,200,400,800", help="comma-separated N values")
    p.add_argument("--models", default="linrec,sasrec",
                   help=f"comma-separated, from {sorted(MODEL_VARIANTS)}")
    p.add_argument("--batch", type=int, default=None,
                   help="sequences per step (default 64 on CUDA, 32 on CPU)")
    p.add_argument("--steps", type=int, default=2, help="least timed steps per configuration")
    p.add_argument("--min-time", type=float, default=2.0,
                   help="keep timing steps (at most 50) until this many seconds have passed")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--num-items", type=int, default=3706, help="catalogue size (ML-1M: 3,706)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--inner", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads per run (default 1: with more, threads spin at "
                        "barriers whenever another process holds a core, which inflates both "
                        "wall and CPU time)")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "out")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_one(cfg: dict) -> dict:
    """Worker: train ``cfg['model']`` at ``cfg['length']`` for a few steps; return the figures."""
    import torch
    import torch.nn.functional as F

    from hybridrec.models import build_model
    from hybridrec.models.sasrec import SoftmaxSelfAttention

    device = torch.device(cfg["device"])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    name, extra = MODEL_VARIANTS[cfg["model"]]
    model = build_model(name, cfg["num_items"], max_len=cfg["length"], hidden_size=cfg["hidden"],
                        inner_size=cfg["inner"], n_layers=cfg["layers"], n_heads=cfg["heads"],
                        **extra).to(device).train()
    if cfg["model"] == "sasrec-explicit":
        for module in model.modules():
            if isinstance(module, SoftmaxSelfAttention):
                module.use_sdpa = False
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seq = torch.randint(1, cfg["num_items"] + 1, (cfg["batch"], cfg["length"]), device=device)
    target = torch.randint(1, cfg["num_items"] + 1, (cfg["batch"],), device=device)

    def step() -> float:
        logits = model.logits(model.last_hidden(seq))  # (B, num_items + 1)
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    for _ in range(cfg["warmup"]):
        step()
    sync()
    times: list[float] = []  # wall seconds per step; the median resists a noisy neighbour
    cpu_times: list[float] = []  # CPU seconds of this process (all threads) per step
    while len(times) < cfg["steps"] or (sum(times) < cfg["min_time"] and len(times) < 50):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    step_s = statistics.median(times)
    cpu_step_s = statistics.median(cpu_times)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"model": cfg["model"], "length": cfg["length"], "device": device.type,
            "batch": cfg["batch"], "steps": len(times), "seq_per_s": cfg["batch"] / step_s,
            "seq_per_cpu_s": cfg["batch"] / cpu_step_s, "step_s": step_s,
            "peak_mb": peak / 2**20}


def run_in_subprocess(cfg: dict) -> dict:
    """One configuration in a fresh process (so its peak memory is its own); a failed one gets
    NaN figures and its ``error``."""
    result: dict = run_settings([sys.executable, __file__, "--worker"], [cfg], cap_s=3600)[0]
    if result["status"] != "ok":
        result.update(dict.fromkeys(("seq_per_s", "seq_per_cpu_s", "step_s", "peak_mb"),
                                    float("nan")))
    return result


def add_ratios(rows: list[dict]) -> None:
    """Throughput and memory of each model relative to SASRec at the same N.

    On CPU the speed ratio uses CPU time (``seq_per_cpu_s``), which other processes sharing
    the cores do not inflate; on CUDA it uses wall time.
    """
    sasrec = {r["length"]: r for r in rows if r["model"] == "sasrec"}
    for r in rows:
        ref = sasrec.get(r["length"])
        speed = "seq_per_s" if r["device"] == "cuda" else "seq_per_cpu_s"
        r["speed_vs_sasrec"] = r[speed] / ref[speed] if ref else float("nan")
        r["mem_vs_sasrec"] = r["peak_mb"] / ref["peak_mb"] if ref else float("nan")


def print_table(rows: list[dict]) -> None:
    head = (f"{'N':>5}  {'model':<16}{'seq/s':>9}{'seq/CPU-s':>11}{'peak MB':>10}"
            f"{'speed/SASRec':>14}{'mem/SASRec':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['length']:>5}  {r['model']:<16}{r['seq_per_s']:>9.1f}"
              f"{r['seq_per_cpu_s']:>11.1f}{r['peak_mb']:>10.1f}"
              f"{r['speed_vs_sasrec']:>14.2f}{r['mem_vs_sasrec']:>12.2f}"
              + (f"  ERROR {r['error']}" if "error" in r else ""))


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cpu = all(r["device"] == "cpu" for r in rows)
    speed, speed_label = (("seq_per_cpu_s", "training sequences / CPU-second") if cpu
                          else ("seq_per_s", "training sequences / s"))
    fig, (ax_speed, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        n = [r["length"] for r in mine]
        ax_speed.plot(n, [r[speed] for r in mine], marker="o", label=model)
        ax_mem.plot(n, [r["peak_mb"] for r in mine], marker="o", label=model)
    for ax, label in ((ax_speed, speed_label), (ax_mem, "peak memory (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        lengths = sorted({r["length"] for r in rows})
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("window length N")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        serve(run_one)
        return
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.batch is None:
        args.batch = 64 if device.startswith("cuda") else 32
    models = [m.strip() for m in args.models.split(",")]
    unknown = sorted(set(models) - set(MODEL_VARIANTS))
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {sorted(MODEL_VARIANTS)}")
    lengths = [int(n) for n in args.lengths.split(",")]
    rows = []
    started = time.perf_counter()
    for n in lengths:
        for model in models:
            cfg = {"model": model, "length": n, "device": device, "batch": args.batch,
                   "steps": args.steps, "min_time": args.min_time, "warmup": args.warmup,
                   "num_items": args.num_items, "hidden": args.hidden, "inner": args.inner,
                   "layers": args.layers, "heads": args.heads, "threads": args.threads}
            rows.append(run_in_subprocess(cfg))
            print(f"  N={n:<5} {model:<16} {rows[-1]['seq_per_s']:8.1f} seq/s", file=sys.stderr)
    add_ratios(rows)
    print(f"\ndevice={device} threads={args.threads} batch={args.batch} items={args.num_items} "
          f"d={args.hidden} inner={args.inner} layers={args.layers} heads={args.heads} "
          f"({time.perf_counter() - started:.0f} s)")
    print_table(rows)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"attention_scaling_{device}"
    fields = ["length", "model", "device", "batch", "steps", "seq_per_s", "seq_per_cpu_s",
              "step_s", "peak_mb", "speed_vs_sasrec", "mem_vs_sasrec"]
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, stem.with_suffix(".png"),
         f"LinRec vs SASRec training step, {device} ({args.threads} thread(s) on CPU), "
         f"batch {args.batch}, d={args.hidden}, {args.layers} layers, {args.heads} heads")
    print(f"wrote {stem.with_suffix('.csv')} and {stem.with_suffix('.png')}")


if __name__ == "__main__":
    main()
