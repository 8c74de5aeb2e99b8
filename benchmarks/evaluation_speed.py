"""Full-ranking evaluation speed and peak memory on Beauty, through the package's evaluation code.

    python benchmarks/evaluation_speed.py [--models linrec,fmlp,sasrec] [--protocols full,uniform99]
        [--threads 1,2] [--windows trimmed] [--passes 2] [--data-root DIR]
        [--out benchmarks/out/evaluation_speed.json]

Data: ``../shared/datasets/beauty/Beauty.txt`` (config entry ``beauty-fmlp``) through the
preprocess and candidates rules' own code (``load_raw``, ``write_dataset``, ``write_candidates``)
into a temporary folder, or an existing dataset folder (``--data-root results/data/beauty-fmlp``).
The test split: 22,363 users ranked against 12,101 items.

Models: the official Beauty architectures of ``config/config.yaml`` with random weights (seed 0;
ranking speed does not depend on the weights; M2Rec gets random text vectors). Each
(model, protocol, threads) runs in a fresh child process (``benchmarks/isolated.py``) that loads
the split, builds the model and times ``--passes`` passes of
``hybridrec.evaluation.evaluate.evaluate_protocols``, the evaluate rule's code (model windows,
scores for every item, history exclusion, top-k lists ``export_depth`` long, metrics), at the
config's ``evaluation.topk`` and ``evaluation.batch_size``. The fastest pass is reported, its
seconds split into the encoder (``last_hidden``), the scores (``logits``) and the rest
(ranking), timed around the model's methods.

``--windows full,trimmed``: a model that ignores leading padding is evaluated on trimmed windows
(users batched by the width their items need, each batch on its widest user's columns); ``full``
runs every user on the whole window, as evaluation did before (the same model, in another child).

Peak memory: the child's peak resident set (``ru_maxrss``) after the passes, and its growth over
the value before the first pass (what evaluation added to the loaded model and split). Bound:
the score matrix, users x (items + 1) x d multiply-adds (2 FLOPs each), at the rate of a 2048^3
sgemm measured in the same child after the passes; and the whole forward pass (encoder on the
full window N plus the scores; LinRec, FMLP-Rec and SASRec only) the same way.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from hybridrec.cpu import configure_cpu_runtime

    configure_cpu_runtime()  # as the evaluate rule does, before torch loads MKL and OpenMP

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
import yaml  # noqa: E402
from isolated import peak_rss_mib, run_settings, serve  # noqa: E402
from torch import Tensor  # noqa: E402
from training_throughput import (  # noqa: E402
    BEAUTY,
    CPU,
    FLOP_COUNTED,
    REPO,
    Clock,
    Setup,
    forward_flops,
    official_setup,
    sgemm_gflops,
    synchronize,
)

from hybridrec.data.sources import load_raw, preprocess_config  # noqa: E402
from hybridrec.data.store import write_candidates, write_dataset  # noqa: E402
from hybridrec.evaluation.evaluate import (  # noqa: E402
    EvalSplit,
    evaluate_protocols,
    export_depth,
    load_eval_split,
)
from hybridrec.jobs.train import num_items_of  # noqa: E402
from hybridrec.models import build_model  # noqa: E402
from hybridrec.models.base import SequentialRecommender  # noqa: E402

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
DATASET = "beauty-fmlp"
TOPK: int = CONFIG["evaluation"]["topk"]
BATCH_SIZE: int = CONFIG["evaluation"]["batch_size"]
SPLIT = "test"


def prepare_dataset(root: Path, raw: Path = BEAUTY) -> None:
    """Beauty's dataset folder and its uniform99 candidates, written by the rules' own code."""
    entry = CONFIG["datasets"][DATASET]
    write_dataset(load_raw(entry, raw), preprocess_config(entry), root, dataset=DATASET)
    write_candidates(root, "uniform99", seed=CONFIG["seed"], dataset=DATASET)


def eval_model(setup: Setup, num_items: int, device: torch.device) -> SequentialRecommender:
    """The model at ``setup``'s architecture with random weights (seed 0), in eval mode."""
    torch.manual_seed(0)
    model = build_model(setup.name, num_items, **setup.architecture)
    if model.needs_item_text:
        text_dim = int(getattr(model.config, "text_dim", 0))
        text = torch.randn(num_items + 1, text_dim)
        text[0] = 0
        model.set_item_text(text)
    return model.to(device).eval()


def evaluation_flops(setup: Setup, users: int, num_items: int) -> dict[str, float | None]:
    """FLOPs of scoring ``users`` against the catalogue, and of their whole forward pass."""
    scores = 2.0 * setup.d * (num_items + 1) * users
    if setup.name not in FLOP_COUNTED:
        return {"scores": scores, "forward": None}
    parts = forward_flops(setup, setup.n, num_items)  # encoder on the full window
    encoder = sum(v for k, v in parts.items() if k != "head") * users
    return {"scores": scores, "forward": encoder + scores}


@contextmanager
def stage_clock(model: SequentialRecommender, device: torch.device
                ) -> Iterator[dict[str, float]]:
    """Wall seconds the block spends in the encoder (``last_hidden``) and in the scores
    (``logits``: hidden @ item table), timed around the model's own methods (one device
    synchronisation per call; ranking already copies each batch's ranks to the host)."""
    seconds = {"encoder": 0.0, "scores": 0.0}

    def timed(stage: str, method: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        def call(x: Tensor) -> Tensor:
            start = time.perf_counter()
            out = method(x)
            synchronize(device)
            seconds[stage] += time.perf_counter() - start
            return out
        return call

    model.last_hidden = timed("encoder", model.last_hidden)  # type: ignore[method-assign,assignment]
    model.logits = timed("scores", model.logits)  # type: ignore[method-assign,assignment]
    try:
        yield seconds
    finally:
        del model.last_hidden, model.logits  # the class's methods again


def measure_evaluation(model: SequentialRecommender, data: EvalSplit, protocol: str, *,
                       passes: int, k: int = TOPK, batch_size: int = BATCH_SIZE,
                       device: torch.device = CPU) -> dict[str, Any]:
    """Time ``passes`` passes of the evaluate rule's ranking of every user of ``data``; the
    fastest pass's seconds split into encoder, scores and the rest (ranking: history
    exclusion, target ranks, log-normaliser, top-k lists, metrics)."""
    depth = export_depth(data, protocol, model.num_items, k)
    walls, cpus, stages = [], [], []
    for _ in range(passes):
        with stage_clock(model, device) as stage, Clock() as clock:
            evaluate_protocols(model, data, [protocol], depth, batch_size)
            synchronize(device)
        walls.append(clock.wall)
        cpus.append(clock.cpu)
        stages.append({**stage, "ranking": clock.wall - sum(stage.values())})
    users = len(data.targets)
    best = min(range(passes), key=walls.__getitem__)
    return {"users": users, "items": model.num_items, "topk": depth, "batch_size": batch_size,
            "pass_seconds": walls, "users_s": users / walls[best],
            "users_per_cpu_s": users / cpus[best], "seconds": walls[best],
            "stage_seconds": stages[best]}


def bound_fractions(flops: dict[str, float | None], seconds: float, gflops: float
                    ) -> dict[str, float | None]:
    """Time at the matmul rate ``gflops`` over the measured time, for each FLOP count."""
    return {f"fraction_{name}": None if value is None else value / (gflops * 1e9) / seconds
            for name, value in flops.items()}


def on_full_windows(model: SequentialRecommender) -> SequentialRecommender:
    """The same model, declared not to ignore leading padding: evaluated on full windows."""
    model.__class__ = type(f"FullWindow{type(model).__name__}", (type(model),),
                           {"ignores_leading_padding": property(lambda self: False)})
    return model


def run_one(setting: dict[str, Any]) -> dict[str, Any]:
    """Worker: one (model, protocol, threads, windows) on the CPU, in this fresh process."""
    torch.set_num_threads(setting["threads"])
    setup = official_setup(setting["model"])
    data = load_eval_split(setting["root"], SPLIT, setup.n, [setting["protocol"]])
    model = eval_model(setup, num_items_of(setting["root"]), CPU)
    if setting["windows"] == "full":
        model = on_full_windows(model)
    before = peak_rss_mib()
    result = measure_evaluation(model, data, setting["protocol"], passes=setting["passes"])
    peak = peak_rss_mib()
    gemm = sgemm_gflops()[0]
    flops = evaluation_flops(setup, result["users"], model.num_items)
    return {**result, "peak_rss_mib": peak, "rss_growth_mib": peak - before,
            "sgemm_gflops": gemm, **bound_fractions(flops, result["seconds"], gemm),
            "gflop": {k: None if v is None else v / 1e9 for k, v in flops.items()}}


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| model | protocol | threads | windows | users/s (wall) | users per CPU-s | s per "
             "pass (encoder / scores / ranking) | peak RSS MiB (growth) | sgemm GFLOP/s | "
             "of score-matrix bound | of forward bound |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {r['protocol']} | {r['threads']} | {r['windows']} "
                         f"| {r['status']}: {r['error']} | | | | | | |")
            continue
        forward = "-" if r["fraction_forward"] is None else f"{r['fraction_forward']:.3f}"
        stages = " / ".join(f"{v:.2f}" for v in r["stage_seconds"].values())
        lines.append(
            f"| {r['model']} | {r['protocol']} | {r['threads']} | {r['windows']} "
            f"| {r['users_s']:,.0f} | "
            f"{r['users_per_cpu_s']:,.0f} | {r['seconds']:.2f} ({stages}) | "
            f"{r['peak_rss_mib']:,.0f} "
            f"({r['rss_growth_mib']:,.0f}) | {r['sgemm_gflops']:.0f} | "
            f"{r['fraction_scores']:.3f} | {forward} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="linrec,fmlp,sasrec")
    parser.add_argument("--protocols", default="full,uniform99")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--windows", default="trimmed",
                        help="trimmed (today's evaluation), full (every user on the whole "
                             "window, as before), or both")
    parser.add_argument("--passes", type=int, default=2, help="timed passes per setting")
    parser.add_argument("--cap", type=float, default=600.0, help="seconds per setting")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="an existing dataset folder with uniform99 candidates")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" /
                        "evaluation_speed.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve(run_one)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data_root or Path(scratch) / DATASET
        if args.data_root is None:
            prepare_dataset(root)
        settings = [{"model": m, "protocol": p, "threads": int(t), "windows": w,
                     "passes": args.passes, "root": str(root)}
                    for m in args.models.split(",") for p in args.protocols.split(",")
                    for t in args.threads.split(",") for w in args.windows.split(",")]
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
              f"{os.cpu_count()} CPUs; torch {torch.__version__}; data {root}", flush=True)
        results = []
        for setting in settings:  # one fresh process each: its peak RSS is its own
            results += run_settings([sys.executable, __file__, "--worker"], [setting],
                                    cap_s=args.cap)
            print(markdown(results[-1:]).splitlines()[-1], flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(markdown(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
