"""Training throughput of every registered model at its official Beauty settings, against bounds.

    python benchmarks/training_throughput.py --model linrec|fmlp|sasrec|all [--steps 10]
        [--rounds 3] [--threads N] [--group-cost C] [--profile] [--runtime-ab] [--busy]
    python benchmarks/training_throughput.py --model linrec,fmlp,mamba4rec,m2rec \
        --lengths 50,100,200,400 --hidden 64 --batch 256 --loss ce --threads 1 --steps 2
    python benchmarks/training_throughput.py --model mamba4rec,m2rec --measure \
        --train-parquet results/data/ml-100k/split/train.parquet --threads 1 --steps 3
    python benchmarks/training_throughput.py --model mamba4rec,m2rec --before-after \
        --threads 1 --steps 3 --rounds 2

Settings come from ``config/config.yaml`` (``models.<name>``, resolved for Beauty): LinRec and
SASRec d 64, N 50, 8 heads, batch 2048, softmax CE over the catalogue; FMLP-Rec d 64, N 50,
batch 256, BCE against one negative. Samples: every training prefix of
``../shared/datasets/beauty/Beauty.txt`` (all but the last two items per user), or synthetic
data of the same size when that file is absent.

Same-process A/B (the machine is shared, so only ratios taken back to back are trusted): each
round times ``--steps`` steps of the old path (every row on the full window) and then of the new
one (length groups with the leading padding trimmed), on the same model and batch stream, and
records wall and process-CPU seconds. Figures are medians over rounds. Models that do not ignore
leading padding (FMLP-Rec) have one path.

FLOP budget per sequence (multiply-add = 2, backward = 2 x forward): the encoder at the window
width really computed (the old path: N; the new one: the mean over the timed batches of the
group width each row was computed at) plus the output head. Bounds, measured in the same run:
a large (2048^3) sgemm, and the FFN's own matmul shapes (batch x N rows, forward and backward).

``--profile``: torch.profiler breakdown of a few steps of each path by category.
``--runtime-ab``: child processes with the old and new CPU runtime settings (OpenMP wait policy,
MKL strict CNR, glibc heap reuse), idle and with one core kept busy by a spinning process this
script starts and stops. ``--busy``: time the A/B itself with that spinning process running.

``--lengths``: throughput and peak memory against the window length N. One child process per
(model, N), so that each setting's peak resident memory (``ru_maxrss``) is its own; every row on
the full N-wide window (no trimming), the settings given by ``--hidden``, ``--batch`` and
``--loss`` replacing the config's. ``--measure``: one such child per model at the config's
settings on the real training path (trimmed where the model allows), with the seconds an epoch
of ``--train-parquet``'s prefixes (a preprocessed ``split/train.parquet``) takes at that rate.
``--scan`` picks the Mamba models' selective scan (``hybridrec.models.mamba.SCANS``).
``--before-after``: per model, the ``--measure`` children of the former training path (the
PyTorch ``sequential`` scan on full windows) and of today's (the ``fused`` scan on trimmed
windows), and their ratio; with ``--full-window`` both run on full windows (the scan alone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BEAUTY = REPO.parent / "shared" / "datasets" / "beauty" / "Beauty.txt"
USERS, ITEMS, INTERACTIONS = 22_363, 12_101, 198_502

if __name__ == "__main__" and "--child" not in sys.argv:
    from hybridrec.cpu import configure_cpu_runtime

    configure_cpu_runtime()  # as the train rule does; --runtime-ab children set their own

import torch  # noqa: E402
import yaml  # noqa: E402

from hybridrec.cpu import RUNTIME_DEFAULTS, available_cores, reuse_freed_memory  # noqa: E402
from hybridrec.models import MODELS, build_model  # noqa: E402
from hybridrec.models.base import SequentialRecommender  # noqa: E402
from hybridrec.models.layers import Dropout  # noqa: E402
from hybridrec.models.mamba import SCANS, SelectiveSSM  # noqa: E402
from hybridrec.training import trimming  # noqa: E402
from hybridrec.training.batches import Batch, Sequences, TrainingBatches  # noqa: E402
from hybridrec.training.config import TrainConfig  # noqa: E402
from hybridrec.training.loop import make_optimizer, train_step  # noqa: E402
from hybridrec.training.settings import resolve_settings  # noqa: E402

CPU = torch.device("cpu")


def beauty_training_part(path: Path) -> tuple[Sequences, str]:
    seqs = []
    for line in path.read_text().splitlines():
        ids = [int(v) for v in line.split()[1:]]
        seqs.append(ids[:-2])  # leave-one-out: last = test, second to last = validation
    num_items = max(max(s, default=0) for s in seqs)
    return Sequences.from_lists(seqs, num_items), f"Beauty.txt ({path})"


def synthetic_training_part(seed: int = 0, users: int = USERS, items: int = ITEMS
                            ) -> tuple[Sequences, str]:
    """Beauty 5-core's shape (by default its users and items): lengths >= 5, mean 8.9."""
    g = torch.Generator().manual_seed(seed)
    extra = torch.distributions.Geometric(probs=torch.tensor(1 / (INTERACTIONS / USERS - 4)))
    torch.manual_seed(seed)
    lengths = 5 + extra.sample((users,)).long() - 1
    lengths = lengths.clamp_max(200)
    ids = torch.randint(1, items + 1, (int(lengths.sum()),), generator=g)
    offsets = torch.zeros(users + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, 0)
    train_lists = [ids[offsets[u]:offsets[u + 1] - 2].tolist() for u in range(users)]
    size = "Beauty-sized" if (users, items) == (USERS, ITEMS) else f"{users} users, {items} items"
    return Sequences.from_lists(train_lists, items), f"synthetic ({size})"


@dataclass(frozen=True)
class Setup:
    """One model at its official settings: architecture, training config, sizes."""

    name: str
    architecture: dict[str, Any]
    config: TrainConfig

    @property
    def d(self) -> int:
        return int(self.architecture["hidden_size"])

    @property
    def n(self) -> int:
        return int(self.architecture["max_len"])

    @property
    def inner(self) -> int:
        return int(self.architecture.get("inner_size") or 4 * self.d)

    @property
    def layers(self) -> int:
        return int(self.architecture["n_layers"])


def official_setup(name: str) -> Setup:
    entry = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"][name]
    settings = resolve_settings(name, entry, "beauty")
    return Setup(name, settings.architecture, TrainConfig(**settings.training))


# Models whose FLOPs forward_flops counts (the Mamba models' scan is not counted).
FLOP_COUNTED = ("fmlp", "linrec", "sasrec")

# the width of the item text vectors of text-aware models: text.encoder's default (tfidf, 64)
TEXT_DIM = 64


def chosen_setup(name: str, args: argparse.Namespace) -> Setup:
    """The config's settings for Beauty, with --max-len, --hidden, --batch and --loss in force
    where given; a text-aware model gets TEXT_DIM-wide item text, as the text stage gives it."""
    setup = official_setup(name)
    architecture = dict(setup.architecture)
    if MODELS[name].needs_item_text:
        architecture["text_dim"] = TEXT_DIM
    for key, value in (("max_len", args.max_len), ("hidden_size", args.hidden)):
        if value is not None:
            architecture[key] = value
    config = setup.config
    if args.batch is not None:
        config = replace(config, batch_size=args.batch)
    if args.loss is not None:
        config = replace(config, loss=args.loss)
    return Setup(name, architecture, config)


def train_parquet_part(path: Path) -> tuple[Sequences, str]:
    """The training part of a preprocessed dataset (results/data/{dataset}/split/train.parquet)."""
    import pyarrow.parquet as pq

    items = pq.read_table(path, columns=["items"]).column("items")
    num_items = pq.read_metadata(path.parent.parent / "item_ids.parquet").num_rows
    return Sequences.from_arrow(items, num_items), str(path)


def forward_flops(setup: Setup, width: float, num_items: int) -> dict[str, float]:
    """Forward FLOPs of one sequence whose encoder runs on ``width`` positions (the models of
    ``FLOP_COUNTED``)."""
    d, layers, n = setup.d, setup.layers, width
    parts = {"ffn": layers * n * 2 * 2 * d * setup.inner, "embedding": n * d}
    if setup.name == "fmlp":
        # real FFT of length N ~ 2.5 N log2 N per channel, forward + inverse, and the complex
        # product over N/2+1 bins (6 FLOPs each); FMLP-Rec always runs on the full window
        parts["filter"] = layers * d * (2 * 2.5 * n * math.log2(n) + 6 * (n // 2 + 1))
    else:
        parts["projections"] = layers * n * 4 * 2 * d * d  # Q, K, V, output
        if setup.name == "linrec":  # per head Kn^T V then Qn (Kn^T V): 2 x 2 n d d_h
            d_h = d // int(setup.architecture["n_heads"])
            parts["attention"] = layers * 2 * 2 * n * d * d_h
        else:  # Q K^T and P V over every (query, key) pair of the window
            parts["attention"] = layers * 2 * 2 * n * n * d
    parts["head"] = 2 * d * (num_items + 1) if setup.config.loss == "ce" else 2 * 2 * d
    return parts


class Clock:
    """Wall and process-CPU seconds of a block (CPU time is robust to other processes' load)."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (a no-op on the CPU), so a Clock times them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sgemm_gflops(size: int = 2048, repeats: int = 5, device: torch.device = CPU,
                 dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """(wall, CPU-time) GFLOP/s of a large square matmul (float32: an sgemm) on ``device``.

    CUDA float32 matmuls follow ``torch.backends.cuda.matmul.allow_tf32``.
    """
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.matmul(a, b)
    synchronize(device)
    with Clock() as clock:
        for _ in range(repeats):
            torch.matmul(a, b)
        synchronize(device)
    flops = 2 * size**3 * repeats
    return flops / clock.wall / 1e9, flops / clock.cpu / 1e9


def ffn_shape_gflops(rows: int, d: int, inner: int, repeats: int = 10) -> tuple[float, float]:
    """(wall, CPU-time) GFLOP/s of the FFN matmuls at ``rows`` positions, forward and backward."""
    x, w1, w2 = torch.randn(rows, d), torch.randn(d, inner), torch.randn(inner, d)
    gy = torch.randn(rows, d)

    def once() -> None:
        h = x @ w1  # (rows, inner)
        _ = h @ w2  # (rows, d): forward
        gh = gy @ w2.T  # backward: grads of h, w2, x, w1
        _ = h.T @ gy
        _ = gh @ w1.T
        _ = x.T @ gh

    once()
    with Clock() as clock:
        for _ in range(repeats):
            once()
    flops = 6 * 2 * rows * d * inner * repeats  # 6 matmuls of rows x d x inner
    return flops / clock.wall / 1e9, flops / clock.cpu / 1e9


@contextmanager
def busy_core() -> Iterator[None]:
    """One spinning process (another user's job holding a core) while the block runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        spinner.kill()
        spinner.wait()


class Trainer:
    """One model on ``device``, its optimizer and an endless stream of its batches.

    ``bf16`` is the training loop's own switch (``training.bf16``: autocast on CUDA only).
    """

    def __init__(self, setup: Setup, data: Sequences, device: torch.device = CPU,
                 bf16: bool = False, scan: str = "fused") -> None:
        self.setup, self.device, self.bf16 = setup, device, bf16
        torch.manual_seed(0)
        self.model: SequentialRecommender = build_model(
            setup.name, data.num_items, **setup.architecture).to(device).train()
        for module in self.model.modules():
            if isinstance(module, SelectiveSSM):
                module.scan = scan
        self.optimizer = make_optimizer(self.model, setup.config)
        self.batches = TrainingBatches(data, setup.config.objective, setup.n,
                                       negatives=setup.config.loss == "bce")
        self.generator = torch.Generator().manual_seed(0)
        self._stream = self._forever()

    def _forever(self) -> Iterator[Batch]:
        while True:
            yield from self.batches.epoch(self.setup.config.batch_size, self.generator)

    def steps(self, count: int, trim: bool) -> tuple[int, float]:
        """Train ``count`` steps; returns (sequences, mean width computed per sequence).

        Returns once the device has finished them, so a Clock around it times the steps.
        """
        sequences, positions = 0, 0.0
        for _ in range(count):
            with torch.profiler.record_function("batch building"):
                batch = next(self._stream).to(self.device)
            if trim and self.model.ignores_leading_padding:
                groups = trimming.length_groups(batch.inputs)
                positions += sum(g.rows.numel() * g.width for g in groups)
            else:
                positions += len(batch) * self.setup.n
            train_step(self.model, self.optimizer, batch, loss=self.setup.config.loss,
                       bf16=self.bf16, trim_padding=trim)
            sequences += len(batch)
        synchronize(self.device)
        return sequences, positions / sequences


CATEGORIES = ("catalogue softmax", "embedding lookups", "optimizer", "batch building",
              "dropout draws", "encoder matmuls", "FFT", "other element-wise")


def categorise(name: str, shapes: list[list[int]], num_items: int) -> str:
    dims = {d for shape in shapes for d in shape}
    if name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul",
                "aten::_scaled_dot_product_flash_attention_for_cpu",
                "aten::_scaled_dot_product_flash_attention_for_cpu_backward"):
        return "catalogue softmax" if num_items + 1 in dims else "encoder matmuls"
    if "log_softmax" in name or "nll_loss" in name:
        return "catalogue softmax"
    if "embedding" in name or name == "aten::index_select":
        return "embedding lookups"
    if "adam" in name.lower():
        return "optimizer"
    if name in ("aten::uniform_", "aten::ge"):
        return "dropout draws"
    if "fft" in name:
        return "FFT"
    return "other element-wise"


def _inside(event: Any, name: str) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == name:
            return True
        parent = parent.cpu_parent
    return False


def profile(trainer: Trainer, steps: int, trim: bool, num_items: int) -> dict[str, float]:
    """Seconds per step by category (self time of aten ops on the main thread)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    trainer.steps(1, trim)
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof, \
            Clock() as clock:
        trainer.steps(steps, trim)
    seconds: dict[str, float] = defaultdict(float)
    for event in prof.events():
        if event.name == "batch building":
            seconds["batch building"] += event.cpu_time_total / 1e6  # its ops included
        elif event.name.startswith("aten::") and not _inside(event, "batch building"):
            seconds[categorise(event.name, event.input_shapes or [], num_items)] += (
                event.self_cpu_time_total / 1e6)
    accounted = sum(seconds.values())
    seconds["Python + framework overhead"] = max(0.0, clock.wall - accounted)
    return {k: v / steps for k, v in seconds.items()}


def dropout_share(trainer: Trainer, steps: int, trim: bool) -> float:
    """Fraction of a step's CPU time spent in dropout: A/B with every dropout p set to 0."""
    layers = [m for m in trainer.model.modules() if isinstance(m, Dropout)]
    saved = [m.p for m in layers]
    on, off = [], []
    for _ in range(2):
        with Clock() as clock:
            trainer.steps(steps, trim)
        on.append(clock.cpu)
        for m in layers:
            m.p = 0.0
        with Clock() as clock:
            trainer.steps(steps, trim)
        off.append(clock.cpu)
        for m, p in zip(layers, saved, strict=True):
            m.p = p
    return 1 - statistics.median(off) / statistics.median(on)


def ab(setup: Setup, data: Sequences, args: argparse.Namespace) -> dict[str, Any]:
    """The old/new A/B of one model; returns its figures (printed by the caller)."""
    trainer = Trainer(setup, data)
    paths = [False, True] if trainer.model.ignores_leading_padding else [False]
    trainer.steps(args.warmup, True)
    times: dict[bool, list[tuple[float, float]]] = {p: [] for p in paths}
    widths: dict[bool, float] = {}
    context = busy_core() if args.busy else _nothing()
    with context:
        for _ in range(args.rounds):
            for trim in paths:
                with Clock() as clock:
                    sequences, widths[trim] = trainer.steps(args.steps, trim)
                times[trim].append((sequences / clock.wall, sequences / clock.cpu))
    rows = int(setup.config.batch_size * setup.n)
    gemm, gemm_cpu = sgemm_gflops()
    shaped, shaped_cpu = ffn_shape_gflops(rows, setup.d, setup.inner)
    result: dict[str, Any] = {
        "model": setup.name, "batch": setup.config.batch_size, "loss": setup.config.loss,
        "threads": torch.get_num_threads(), "sgemm_gflops": [gemm, gemm_cpu],
        "ffn_gflops": [shaped, shaped_cpu], "paths": {},
    }
    for trim in paths:
        parts = forward_flops(setup, widths[trim], data.num_items)
        budget = 3 * sum(parts.values())
        wall = statistics.median(t[0] for t in times[trim])
        cpu = statistics.median(t[1] for t in times[trim])
        result["paths"]["trimmed" if trim else "full window"] = {
            "seq_s": wall, "seq_per_cpu_s": cpu, "width": widths[trim],
            "mflop_per_seq": budget / 1e6,
            "mflop_parts": {k: 3 * v / 1e6 for k, v in parts.items()},
            "fraction_sgemm": wall * budget / (gemm * 1e9),
            "fraction_ffn": wall * budget / (shaped * 1e9),
            "fraction_ffn_cpu": cpu * budget / (shaped_cpu * 1e9),
            "rounds": times[trim],
        }
    if len(paths) == 2:
        result["speedup"] = [statistics.median(b[k] / a[k] for a, b in
                                                zip(times[False], times[True], strict=True))
                             for k in (0, 1)]
    if args.profile:
        result["profile"] = {("trimmed" if trim else "full window"):
                             profile(trainer, args.profile_steps, trim, data.num_items)
                             for trim in paths}
        result["dropout_share"] = {("trimmed" if trim else "full window"):
                                   dropout_share(trainer, args.profile_steps, trim)
                                   for trim in paths}
    return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def print_result(r: dict[str, Any]) -> None:
    print(f"\n== {r['model']} (batch {r['batch']}, {r['loss']}, {r['threads']} threads)")
    print(f"bounds: sgemm 2048^3 {r['sgemm_gflops'][0]:.1f} GFLOP/s wall "
          f"[{r['sgemm_gflops'][1]:.1f} per CPU-s]; FFN-shaped {r['ffn_gflops'][0]:.1f} "
          f"[{r['ffn_gflops'][1]:.1f}]")
    for path, p in r["paths"].items():
        parts = ", ".join(f"{k} {v:.2f}" for k, v in p["mflop_parts"].items())
        print(f"{path}: width {p['width']:.1f}; {p['mflop_per_seq']:.2f} MFLOP/seq fwd+bwd "
              f"({parts})")
        print(f"  seq/s {p['seq_s']:.0f} wall [{p['seq_per_cpu_s']:.0f} per CPU-s]; fraction "
              f"of sgemm bound {p['fraction_sgemm']:.3f}, of FFN-shaped bound "
              f"{p['fraction_ffn']:.3f} [{p['fraction_ffn_cpu']:.3f} by CPU time]")
        print("  rounds (seq/s wall, per CPU-s): "
              + " ".join(f"{w:.0f}/{c:.0f}" for w, c in p["rounds"]))
    if "speedup" in r:
        print(f"speed-up trimmed / full window (median of per-round ratios): "
              f"{r['speedup'][0]:.2f}x wall, {r['speedup'][1]:.2f}x CPU time")
    for path, seconds in r.get("profile", {}).items():
        total = sum(seconds.values())
        print(f"profile, {path} ({total * 1e3:.0f} ms/step; dropout ablation: "
              f"{r['dropout_share'][path]:.0%} of CPU time):")
        for key, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {key:28s} {value * 1e3:8.1f} ms  {value / total:6.1%}")


# name -> (environment for a child process, whether it calls reuse_freed_memory)
RUNTIMES: dict[str, tuple[dict[str, str | None], bool]] = {
    "spin (old)": ({"OMP_WAIT_POLICY": None, "MKL_CBWR": None}, False),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE", "MKL_CBWR": None}, False),
    "passive + strict CNR": ({**RUNTIME_DEFAULTS}, False),
    "passive + strict CNR + heap reuse (new)": ({**RUNTIME_DEFAULTS}, True),
}


def runtime_ab(args: argparse.Namespace, models: list[str]) -> None:
    """Child processes per runtime setting, idle and beside one spinning process, alternating."""
    base = {k: v for k, v in os.environ.items() if k not in RUNTIME_DEFAULTS}
    rates: dict[tuple[str, str, bool], list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for busy in (False, True):
            for name, (settings, heap_reuse) in RUNTIMES.items():
                env = {**base, **{k: v for k, v in settings.items() if v is not None}}
                command = [sys.executable, __file__, "--child", "--rounds", "1", "--steps",
                           str(args.steps), "--warmup", str(args.warmup), "--threads",
                           str(args.threads), "--json"]
                command += ["--synthetic"] if args.synthetic else []
                command += ["--busy"] if busy else []
                command += ["--reuse-freed-memory"] if heap_reuse else []
                for model in models:
                    out = subprocess.run([*command, "--model", model], env=env, check=True,
                                         capture_output=True, text=True).stdout
                    result = json.loads(out.strip().splitlines()[-1])
                    path = "trimmed" if "trimmed" in result["paths"] else "full window"
                    rates[(model, name, busy)].append(result["paths"][path]["seq_s"])
    print("\n== CPU runtime A/B: seq/s wall, median over rounds (new training path)")
    print("| model | runtime | idle | one core busy | slowdown |")
    print("|---|---|---|---|---|")
    for model in models:
        for name in RUNTIMES:
            alone = statistics.median(rates[(model, name, False)])
            shared = statistics.median(rates[(model, name, True)])
            print(f"| {model} | {name} | {alone:.0f} | {shared:.0f} | {alone / shared:.2f}x |")


def max_rss_mib() -> float:
    """This process's peak resident memory so far, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(setup: Setup, data: Sequences, args: argparse.Namespace) -> dict[str, Any]:
    """Training rate of one setting (median over --rounds of --steps steps, after --warmup),
    the peak resident memory before the first step and after the last, and the seconds one
    epoch of ``data``'s samples takes at the CPU-time rate. ``--full-window``: no trimming."""
    rss_setup = max_rss_mib()
    trainer = Trainer(setup, data, scan=args.scan)
    trim = not args.full_window
    trainer.steps(args.warmup, trim)
    walls, cpus = [], []
    for _ in range(args.rounds):
        with Clock() as clock:
            sequences, width = trainer.steps(args.steps, trim)
        walls.append(sequences / clock.wall)
        cpus.append(sequences / clock.cpu)
    samples = len(trainer.batches)
    seq_per_cpu_s = statistics.median(cpus)
    return {"model": setup.name, "scan": args.scan, "trimmed": trim, "max_len": setup.n,
            "hidden": setup.d,
            "batch": setup.config.batch_size, "loss": setup.config.loss,
            "threads": torch.get_num_threads(), "width": width,
            "seq_s": statistics.median(walls), "seq_per_cpu_s": seq_per_cpu_s,
            "rss_setup_mib": rss_setup, "peak_rss_mib": max_rss_mib(),
            "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "samples_per_epoch": samples, "epoch_cpu_s": samples / seq_per_cpu_s}


def child_measure(args: argparse.Namespace, model: str, max_len: int | None,
                  scan: str | None = None, full_window: bool | None = None) -> dict[str, Any]:
    """:func:`measure` in a fresh child process (its own peak memory); its JSON result."""
    command = [sys.executable, __file__, "--child", "--measure", "--json", "--model", model,
               "--steps", str(args.steps), "--rounds", str(args.rounds),
               "--warmup", str(args.warmup), "--threads", str(args.threads),
               "--scan", scan or args.scan]
    for flag, value in (("--max-len", max_len), ("--hidden", args.hidden),
                        ("--batch", args.batch), ("--loss", args.loss),
                        ("--train-parquet", args.train_parquet)):
        if value is not None:
            command += [flag, str(value)]
    command += ["--synthetic"] if args.synthetic else []
    command += ["--full-window"] if (args.full_window if full_window is None else full_window) \
        else []
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def print_measures(results: list[dict[str, Any]]) -> None:
    print("| model | scan | trimmed | N | d | batch | loss | threads | parameters | seq/s wall "
          "| seq per CPU-s | peak RSS MiB (before the model) | samples per epoch | epoch, CPU-s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['scan']} | {r['trimmed']} | {r['max_len']} | {r['hidden']} "
              f"| {r['batch']} | {r['loss']} "
              f"| {r['threads']} | {r['parameters']:,} | {r['seq_s']:.0f} "
              f"| {r['seq_per_cpu_s']:.0f} | {r['peak_rss_mib']:,.0f} "
              f"({r['rss_setup_mib']:,.0f}) | {r['samples_per_epoch']:,} "
              f"| {r['epoch_cpu_s']:,.0f} |")


def before_after(args: argparse.Namespace, models: list[str]) -> None:
    """Per model, the former training path against today's, each in its own child process:
    rate per CPU-second and peak resident memory, and the ratios."""
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{args.rounds} rounds of {args.steps} steps after {args.warmup}, one child each; "
          f"data: {args.train_parquet or 'Beauty.txt'}")
    results = []
    for model in models:
        before = child_measure(args, model, args.max_len, scan="sequential", full_window=True)
        after = child_measure(args, model, args.max_len, scan="fused")
        results += [before, after]
        print(f"{model}: {after['seq_per_cpu_s'] / before['seq_per_cpu_s']:.2f}x sequences per "
              f"CPU-second, peak RSS {before['peak_rss_mib']:,.0f} -> "
              f"{after['peak_rss_mib']:,.0f} MiB", flush=True)
    print_measures(results)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all",
                        help=f"all, or comma-separated names of {sorted(MODELS)}")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=available_cores())
    parser.add_argument("--group-cost", type=int, default=trimming.GROUP_COST)
    parser.add_argument("--synthetic", action="store_true", help="ignore Beauty.txt")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--busy", action="store_true", help="one spinning process beside")
    parser.add_argument("--runtime-ab", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON line per model")
    parser.add_argument("--lengths", help="comma-separated N: throughput and peak memory vs N")
    parser.add_argument("--measure", action="store_true",
                        help="rate, peak memory and epoch seconds per model (a child each)")
    parser.add_argument("--max-len", type=int, help="N instead of the config's")
    parser.add_argument("--hidden", type=int, help="d instead of the config's")
    parser.add_argument("--batch", type=int, help="batch size instead of the config's")
    parser.add_argument("--loss", choices=["ce", "bce"], help="loss instead of the config's")
    parser.add_argument("--full-window", action="store_true", help="never trim padding")
    parser.add_argument("--scan", choices=SCANS, default="fused",
                        help="the Mamba models' selective scan")
    parser.add_argument("--before-after", action="store_true",
                        help="former path (sequential scan, full windows) against today's")
    parser.add_argument("--train-parquet", type=Path,
                        help="a preprocessed split/train.parquet instead of Beauty.txt")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reuse-freed-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reuse_freed_memory:
        reuse_freed_memory()
    torch.set_num_threads(args.threads)
    trimming.GROUP_COST = args.group_cost
    models = sorted(MODELS) if args.model == "all" else args.model.split(",")
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"--model: unknown {unknown}; registered: {sorted(MODELS)}")
    if args.runtime_ab:
        runtime_ab(args, models)
        return 0
    if args.before_after:
        before_after(args, models)
        return 0
    if (args.lengths or args.measure) and not args.child:
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
              f"{args.rounds} rounds of {args.steps} steps after {args.warmup} per setting, "
              f"one child process each; data: {args.train_parquet or 'Beauty.txt'}")
        lengths = [int(n) for n in args.lengths.split(",")] if args.lengths else [None]
        print_measures([child_measure(args, model, n) for model in models for n in lengths])
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return 0
    if args.train_parquet is not None:
        data, source = train_parquet_part(args.train_parquet)
    else:
        data, source = (beauty_training_part(BEAUTY) if BEAUTY.exists() and not args.synthetic
                        else synthetic_training_part())
    if args.measure:  # a child of --lengths or --measure
        print(json.dumps(measure(chosen_setup(models[0], args), data, args)))
        return 0
    if not args.json:
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
              f"({os.cpu_count()} CPUs); runtime "
              + ", ".join(f"{k}={os.environ.get(k)}" for k in RUNTIME_DEFAULTS))
        print(f"data: {source}: {data.num_users} users, {data.num_items} items; threads "
              f"{args.threads}, group cost {args.group_cost}, {args.rounds} rounds of "
              f"{args.steps} steps per path" + (", one core kept busy" if args.busy else ""))
    for name in models:
        result = ab(official_setup(name), data, args)
        if args.json:
            print(json.dumps(result))
        else:
            print_result(result)
    if not args.json:
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
