"""Every benchmark on one GPU: training throughput of each registered model and full-ranking
evaluation, in fp32, TF32 and bf16 autocast, each eager and under ``torch.compile``.

    bash benchmarks/gpu.sh [--out benchmarks/out/gpu] [--budget 420] [--cap 60]
    python benchmarks/gpu.py --device cpu --smoke --out DIR   # the same code path, tiny, on a CPU

Writes ``<out>.json`` (the machine, the command and one object per setting) and ``<out>.md``
(one table row per setting). Without CUDA (and without ``--device cpu``) it prints one line
saying so and exits 0.

Settings: {train, eval} x every model of ``--models`` (default: the registry, the paper's three
first) x ``--precisions`` x ``--compile``, eager ones first, then compiled ones model by model
(a budget cut then leaves the first models complete), in one worker process
(``benchmarks/isolated.py``). Each setting gets ``--cap`` seconds; one that fails (an exception,
``torch.compile`` unsupported, out of memory, a crashed or stuck worker) is recorded as
``failed`` with its error, and the run goes on. At ``--budget`` seconds after the start nothing
new begins: what is left is recorded as ``skipped``. So the whole run ends within the budget plus
the data preparation and one worker start (default budget 420 s: under 8 minutes in all).

- train: ``training_throughput.Trainer`` (the training loop's ``train_step`` on the model's
  official Beauty settings, leading padding trimmed as training does) on the training prefixes
  of Beauty.txt: ``--warmup`` untimed steps, then ``--steps`` timed. bf16 is the loop's own
  ``training.bf16`` (autocast of the forward pass on CUDA; it does nothing on a CPU, so a CPU
  bf16 training setting fails on purpose rather than report fp32 as bf16).
- eval: ``evaluation_speed.measure_evaluation`` (the evaluate rule's ranking of all 22,363 test
  users against 12,101 items under full ranking) with random weights, ``--passes`` passes
  (the first includes compilation), the fastest reported; bf16 autocasts the whole pass.
- precision: fp32 (IEEE matmuls and convolutions), tf32 (TF32 matmuls and convolutions, CUDA
  only), bf16 (autocast to bfloat16). The bound for a setting's FLOP fraction is a large square
  matmul at the same precision, measured in the same worker (8192^3 on CUDA).
- compile: the model's ``forward`` wrapped by ``torch.compile`` (``--compile-backend``,
  default inductor), a fresh compile per setting (``torch._dynamo.reset()``).
- memory: CUDA peak allocated bytes per setting (``torch.cuda.max_memory_allocated``); not
  measured on a CPU (see evaluation_speed.py for per-process CPU peaks).

``--smoke``: 96 synthetic users and 150 items, training batches of 64, 1 warm-up and 2 timed
steps, 1 eval pass, and the ``eager`` compile backend (dynamo's graph capture without code
generation), so a CPU runs a setting in about a second.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from hybridrec.cpu import configure_cpu_runtime

    configure_cpu_runtime()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from evaluation_speed import (  # noqa: E402
    SPLIT,
    eval_model,
    evaluation_flops,
    measure_evaluation,
    prepare_dataset,
)
from isolated import run_settings, serve  # noqa: E402
from training_throughput import (  # noqa: E402
    BEAUTY,
    FLOP_COUNTED,
    REPO,
    Clock,
    Trainer,
    beauty_training_part,
    forward_flops,
    official_setup,
    sgemm_gflops,
    synthetic_training_part,
)

from hybridrec.data.demo import generate_demo  # noqa: E402
from hybridrec.data.preprocess import PreprocessConfig  # noqa: E402
from hybridrec.data.store import write_dataset  # noqa: E402
from hybridrec.evaluation.evaluate import load_eval_split  # noqa: E402
from hybridrec.jobs.train import num_items_of  # noqa: E402
from hybridrec.models import MODELS  # noqa: E402
from hybridrec.training.batches import Sequences  # noqa: E402

PRECISIONS = ("fp32", "tf32", "bf16")
# Priority when the budget runs short: the paper's models, then the others in the registry.
MODEL_ORDER: list[str] = [m for m in ("linrec", "fmlp", "sasrec", "mamba4rec", "m2rec")
                          if m in MODELS]
MODEL_ORDER += sorted(set(MODELS) - set(MODEL_ORDER))
SMOKE_USERS, SMOKE_ITEMS, SMOKE_BATCH = 96, 150, 64
NO_CUDA = "benchmarks/gpu.py: no CUDA device here (torch {}), nothing run; exiting 0"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --smoke)")
    p.add_argument("--smoke", action="store_true", help="tiny data and steps (see above)")
    p.add_argument("--models", default=",".join(MODEL_ORDER), help="in priority order")
    p.add_argument("--benchmarks", default="train,eval")
    p.add_argument("--precisions", default=",".join(PRECISIONS))
    p.add_argument("--compile", default="off,on", help="off, on or both (off,on)")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (default inductor; eager with --smoke)")
    p.add_argument("--warmup", type=int, default=None, help="untimed training steps (3)")
    p.add_argument("--steps", type=int, default=None, help="timed training steps (10)")
    p.add_argument("--passes", type=int, default=None, help="evaluation passes (3)")
    p.add_argument("--cap", type=float, default=60.0, help="seconds per setting")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds after which no new setting starts")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "gpu",
                   help="writes OUT.json and OUT.md")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    small = args.smoke
    args.warmup = args.warmup if args.warmup is not None else (1 if small else 3)
    args.steps = args.steps if args.steps is not None else (2 if small else 10)
    args.passes = args.passes if args.passes is not None else (1 if small else 3)
    args.compile_backend = args.compile_backend or ("eager" if small else "inductor")
    return args


def settings_of(args: argparse.Namespace, data_root: Path) -> list[dict[str, Any]]:
    """Every setting: eager ones first (the cheap half, and the reference), then compiled ones
    model by model in ``--models`` order, so a budget cut leaves the first models complete."""
    common = {"device": args.device, "smoke": args.smoke, "root": str(data_root),
              "warmup": args.warmup, "steps": args.steps, "passes": args.passes,
              "backend": args.compile_backend}
    return [{"benchmark": bench, "model": model, "precision": precision, "compile": compiled,
             **common}
            for compiled in [c == "on" for c in args.compile.split(",")]
            for model in args.models.split(",")
            for precision in args.precisions.split(",")
            for bench in args.benchmarks.split(",")]


# ---------------------------------------------------------------------------------------------
# Worker: one setting


def set_tf32(enabled: bool) -> None:
    """TF32 for CUDA matmuls and cuDNN convolutions (the new API where torch has it: mixing it
    with the legacy flags is an error in recent torch)."""
    mode = "tf32" if enabled else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode  # type: ignore[attr-defined]
    else:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


@contextlib.contextmanager
def precision_mode(device: torch.device, precision: str) -> Iterator[None]:
    """fp32 and bf16 settings compute float32 matmuls in IEEE fp32; tf32 in TF32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {PRECISIONS}")
    if precision == "tf32" and device.type != "cuda":
        raise ValueError("TF32 is a CUDA matmul mode; a CPU has nothing to measure")
    if device.type == "cuda":
        set_tf32(precision == "tf32")
    try:
        yield
    finally:
        if device.type == "cuda":
            set_tf32(False)


@functools.cache
def matmul_gflops(device_name: str, precision: str) -> float:
    """GFLOP/s of a large square matmul at a setting's precision, measured once per worker."""
    device = torch.device(device_name)
    size, dtype = (8192 if device.type == "cuda" else 2048), torch.float32
    if precision == "bf16":
        dtype = torch.bfloat16
    with precision_mode(device, precision):
        return sgemm_gflops(size, repeats=10, device=device, dtype=dtype)[0]


@functools.cache
def training_data(smoke: bool) -> Sequences:
    if smoke:
        return synthetic_training_part(users=SMOKE_USERS, items=SMOKE_ITEMS)[0]
    return (beauty_training_part(BEAUTY) if BEAUTY.exists() else synthetic_training_part())[0]


def compile_forward(model: torch.nn.Module, backend: str) -> None:
    """Compile the model's encoder: training calls ``model(...)``, evaluation ``last_hidden``,
    and both reach ``forward``."""
    model.forward = torch.compile(model.forward, backend=backend)


def train_setting(setting: dict[str, Any], device: torch.device) -> dict[str, Any]:
    if setting["precision"] == "bf16" and device.type != "cuda":
        raise ValueError("training.bf16 autocasts on CUDA only (the training loop's switch); "
                         "a CPU would run fp32")
    data = training_data(setting["smoke"])
    setup = official_setup(setting["model"])
    if setting["smoke"]:
        setup = dataclasses.replace(setup, config=dataclasses.replace(setup.config,
                                                                      batch_size=SMOKE_BATCH))
    trainer = Trainer(setup, data, device, bf16=setting["precision"] == "bf16")
    if setting["compile"]:
        compile_forward(trainer.model, setting["backend"])
    with Clock() as warm:
        trainer.steps(setting["warmup"], True)
    with Clock() as clock:
        sequences, width = trainer.steps(setting["steps"], True)
    rate = sequences / clock.wall
    result: dict[str, Any] = {"throughput": rate, "unit": "seq/s", "batch": setup.config.batch_size,
                              "ms_per_step": clock.wall / setting["steps"] * 1e3,
                              "warmup_s": warm.wall, "width": width, "gflop_per_unit": None}
    if setup.name in FLOP_COUNTED:  # forward + backward = 3 x forward
        flops = 3 * sum(forward_flops(setup, width, data.num_items).values())
        result["gflop_per_unit"] = flops / 1e9
    return result


@functools.cache
def eval_data(root: str, max_len: int) -> Any:
    return load_eval_split(root, SPLIT, max_len, ["full"])


def eval_setting(setting: dict[str, Any], device: torch.device) -> dict[str, Any]:
    setup = official_setup(setting["model"])
    data = eval_data(setting["root"], setup.n)
    model = eval_model(setup, num_items_of(setting["root"]), device)
    if setting["compile"]:
        compile_forward(model, setting["backend"])
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                if setting["precision"] == "bf16" else contextlib.nullcontext())
    with autocast:
        measured = measure_evaluation(model, data, "full", passes=setting["passes"],
                                      device=device)
    flops = evaluation_flops(setup, measured["users"], model.num_items)
    forward = flops["forward"]
    return {"throughput": measured["users_s"], "unit": "users/s",
            "batch": measured["batch_size"], "ms_per_pass": measured["seconds"] * 1e3,
            "pass_seconds": measured["pass_seconds"], "stage_seconds": measured["stage_seconds"],
            "gflop_per_unit": None if forward is None else forward / measured["users"] / 1e9,
            "gflop_scores_per_unit": flops["scores"] / measured["users"] / 1e9}


def run_one(setting: dict[str, Any]) -> dict[str, Any]:
    """Worker: one setting; its CUDA memory peak, and its FLOP fraction of the matmul bound."""
    device = torch.device(setting["device"])
    torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    measure = train_setting if setting["benchmark"] == "train" else eval_setting
    with precision_mode(device, setting["precision"]):
        result = measure(setting, device)
    if device.type == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    gemm = matmul_gflops(str(device), setting["precision"])
    per_unit = result["gflop_per_unit"]
    result["matmul_gflops"] = gemm
    result["fraction_of_bound"] = None if per_unit is None else (
        result["throughput"] * per_unit / gemm)
    return result


# ---------------------------------------------------------------------------------------------
# Parent: data, the worker, the files


def prepare_data(root: Path, smoke: bool) -> None:
    if smoke:
        raw = generate_demo(seed=7, n_users=SMOKE_USERS, n_items=SMOKE_ITEMS)
        write_dataset(raw, PreprocessConfig(), root, dataset="smoke")
    else:
        prepare_dataset(root)


def machine(device: torch.device) -> dict[str, Any]:
    info = {"host": platform.node(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cell(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"GPU benchmark on {m.get('gpu', m['device'])} (torch {m['torch']}, CUDA "
             f"{m['cuda']}), {report['seconds']:.0f} s; command: `{report['command']}`", "",
             "| benchmark | model | precision | compile | status | throughput | ms per step/pass | "
             "peak MiB | GFLOP/unit | matmul GFLOP/s | of bound | error |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["settings"]:
        speed = "" if r["status"] != "ok" else f"{r['throughput']:,.0f} {r['unit']}"
        lines.append(
            f"| {r['benchmark']} | {r['model']} | {r['precision']} | "
            f"{'on' if r['compile'] else 'off'} | {r['status']} | {speed} | "
            f"{cell(r.get('ms_per_step', r.get('ms_per_pass')), '.1f')} | "
            f"{cell(r.get('peak_mib'), ',.0f')} | "
            f"{cell(r.get('gflop_per_unit'), '.4f')} | {cell(r.get('matmul_gflops'), ',.0f')} | "
            f"{cell(r.get('fraction_of_bound'), '.3f')} | {r.get('error', '')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        serve(run_one)
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA.format(torch.__version__))
        return 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "data"
        prepare_data(root, args.smoke)
        settings = settings_of(args, root)
        print(f"{len(settings)} settings on {device}, {args.cap:.0f} s cap each, nothing new "
              f"after {args.budget:.0f} s", flush=True)

        def show(r: dict[str, Any]) -> None:
            speed = (f"{r['throughput']:,.0f} {r['unit']}" if r["status"] == "ok"
                     else r.get("error", ""))
            print(f"{time.monotonic() - start:6.0f} s  {r['benchmark']:5s} {r['model']:9s} "
                  f"{r['precision']:4s} compile {'on ' if r['compile'] else 'off'} "
                  f"{r['status']:7s} {speed}", flush=True)

        results = run_settings([sys.executable, __file__, "--worker"], settings,
                               cap_s=args.cap, deadline=start + args.budget, on_result=show)
    report = {"machine": machine(device), "command": " ".join(sys.argv),
              "seconds": time.monotonic() - start,
              "settings": [{k: v for k, v in r.items() if k not in ("root", "device")}
                           for r in results]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    md_path.write_text(markdown(report))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
