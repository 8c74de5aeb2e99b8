"""A peer side by side: RecBole 1.2.1's SASRec and ours on the same Beauty splits (issue 13).

    python benchmarks/recbole_side_by_side.py [--epochs 3] [--batch-size 256] [--threads 2]
        [--venv benchmarks/.recbole-venv] [--work benchmarks/out/recbole] [--max-users N]
        [--recbole-runtime same|stock] [--install-only] [--profile | --no-profile]
        [--profile-steps 20]

1. A separate virtual environment (``--venv``, created on first use from this interpreter's
   base Python) gets ``torch==2.13.0`` first (pip takes the CPU wheel, never a CUDA build) and
   then ``recbole==1.2.1`` with its other dependencies; RecBole is never a dependency of
   hybridrec.
2. ``Beauty.txt`` goes through hybridrec's own preprocessing (``write_dataset``): the id maps
   and the leave-one-out split every model of the pipeline sees. The same sequences are written
   as RecBole's atomic ``.inter`` file in hybridrec's ids, sorted by user and position, with the
   position as timestamp (``Beauty.txt`` has no times; small integers are exact in RecBole's
   float32 timestamps, and the pre-sorted rows cannot be reordered).
3. Back to back, both on ``--threads`` threads with the same hyperparameters (``models.sasrec``
   of config/config.yaml, except 2 heads and batch 256 unless given: hidden 64, 2 layers, inner
   256, dropout 0.2 / 0.2, max_len 50, CE over the catalogue, Adam lr 0.001): ours through
   ``hybridrec.jobs.train.train_on_dataset`` (the train rule's entry point, which also
   validates after every epoch; the epoch time is its ``train_seconds``), then RecBole's through
   ``benchmarks/recbole_runner.py`` in its venv (``Trainer._train_epoch``, no validation).
4. After ``--epochs`` epochs, the last epoch's weights of each are scored on the validation
   users by hybridrec's own ``rank_full``, with and without history exclusion (RecBole's
   sequential full ranking ranks history items too); RecBole's own evaluator gives a cross-check
   of the second. The script checks that RecBole's validation users, targets and input windows
   equal ours item for item, and that both train on the same number of samples.
5. It prints per-epoch seconds, the ratio (RecBole / ours, medians) and the NDCG@10 / HR@10 of
   each; under ``--target`` (3x) or with ``--profile``, a torch.profiler breakdown of our
   training step at these settings (``benchmarks/training_throughput.py``'s categories).

Our side runs with hybridrec's CPU runtime (``hybridrec.cpu.configure_cpu_runtime``, as the
train rule: passive OpenMP waiting, MKL strict mode, glibc heap reuse). With
``--recbole-runtime same`` (the default) RecBole's process gets the same three, so the ratio
measures the two codes, not OpenMP's wait policy (spinning workers collapse when another
process wants a core; docs/benchmarks.md); ``stock`` gives it the environment this script was
started with, as a user would run it. Files: ``--work`` (default ``benchmarks/out/recbole/``,
git-ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BEAUTY = REPO.parent / "shared" / "datasets" / "beauty" / "Beauty.txt"
RECBOLE = "1.2.1"
TORCH = "2.13.0"  # the CPU wheel pip takes from this machine's disk for exactly this pin
USER_ENV = dict(os.environ)  # what RecBole's process gets: not our runtime defaults below

if __name__ == "__main__":
    from hybridrec.cpu import configure_cpu_runtime

    configure_cpu_runtime()  # as the train rule does, before torch loads OpenMP and MKL

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from hybridrec.cpu import RUNTIME_DEFAULTS  # noqa: E402
from hybridrec.data.preprocess import PreprocessConfig  # noqa: E402
from hybridrec.data.readers import read_interactions  # noqa: E402
from hybridrec.data.store import dataset_files, write_dataset  # noqa: E402
from hybridrec.evaluation.evaluate import EvalSplit, load_eval_split  # noqa: E402
from hybridrec.evaluation.metrics import metrics_from_ranks  # noqa: E402
from hybridrec.evaluation.ranking import rank_full  # noqa: E402
from hybridrec.jobs.train import num_items_of, train_on_dataset  # noqa: E402
from hybridrec.models.base import SequentialRecommender  # noqa: E402
from hybridrec.training.batches import Sequences  # noqa: E402
from hybridrec.training.checkpoint import load_checkpoint  # noqa: E402
from hybridrec.training.config import TrainConfig  # noqa: E402
from hybridrec.training.settings import ModelSettings, resolve_settings  # noqa: E402

HiddenFn = Callable[[torch.Tensor], torch.Tensor]  # row positions (B,) -> hidden states (B, d)


def recbole_python(venv: Path) -> Path:
    """The venv's interpreter with ``recbole==RECBOLE`` installed; creates and fills it if not."""
    python = venv / "bin" / "python"
    if _installed_recbole(python) == RECBOLE:
        return python
    if not python.exists():
        print(f"creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for requirement in (f"torch=={TORCH}", f"recbole=={RECBOLE}"):  # torch first: CPU wheel
        print(f"installing {requirement} into {venv}", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", requirement],
                       check=True)
    if (found := _installed_recbole(python)) != RECBOLE:
        raise RuntimeError(f"{python}: recbole {found} after installing {RECBOLE}")
    return python


def _installed_recbole(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                            "print(m.version('recbole'))"], capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def preprocess(source: Path, root: Path, max_users: int | None) -> None:
    """``source`` (``user item item ...``) through hybridrec's preprocessing into ``root``."""
    raw = read_interactions(source, "fmlp_txt")
    if max_users is not None:
        raw = raw[raw["user"].isin(raw["user"].drop_duplicates().head(max_users))]
    write_dataset(raw, PreprocessConfig(), root, dataset="beauty")


def write_atomic(root: Path, folder: Path, name: str) -> None:
    """``folder/name/name.inter``: one row per interaction in hybridrec's ids, sorted by user and
    position, the position as timestamp."""
    table = pq.read_table(dataset_files(root)["sequences"], columns=["user", "items"])
    items = table.column("items").combine_chunks()
    lengths = np.diff(items.offsets.to_numpy())
    starts = np.repeat(items.offsets.to_numpy()[:-1], lengths)
    inter = pd.DataFrame({
        "user_id:token": np.repeat(table.column("user").to_numpy(), lengths),
        "item_id:token": items.flatten().to_numpy(),
        "timestamp:float": np.arange(len(starts)) - starts,
    })
    (folder / name).mkdir(parents=True, exist_ok=True)
    inter.to_csv(folder / name / f"{name}.inter", sep="\t", index=False)


def side_by_side_settings(args: argparse.Namespace) -> ModelSettings:
    """``models.sasrec`` from config/config.yaml with this comparison's heads, batch, epochs."""
    entry = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]["sasrec"]
    settings = resolve_settings("sasrec", entry, "beauty-fmlp")
    architecture = {**settings.architecture, "n_heads": args.heads}
    training = {**settings.training, "batch_size": args.batch_size, "epochs": args.epochs,
                "patience": args.epochs, "val_metric": "ndcg@10"}
    return ModelSettings("sasrec", architecture, training)


def train_ours(root: Path, settings: ModelSettings, work: Path, args: argparse.Namespace
               ) -> tuple[SequentialRecommender, list[dict[str, Any]], float]:
    """Our SASRec through the train rule's entry point: the last epoch's weights, the history,
    and the process CPU seconds of the whole call (validation and checkpoints included)."""
    shutil.rmtree(work, ignore_errors=True)  # a fresh run, never a resume
    cpu = _cpu_seconds()
    model, result = train_on_dataset(
        root, settings, seed=args.seed, device="cpu", bf16=False, protocol="full",
        eval_batch_size=1024, checkpoint_dir=work / "checkpoints",
        history_path=work / "history.parquet", threads=args.threads)
    if result.best_epoch != result.epochs_run:  # train_on_dataset returns the best epoch's
        last = result.best_checkpoint.parent / f"epoch-{result.epochs_run:04d}.pt"
        model.load_state_dict(load_checkpoint(last)["model"])
    return model, result.history.to_dict("records"), _cpu_seconds() - cpu


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_recbole(python: Path, atomic: Path, settings: ModelSettings, work: Path,
                args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """RecBole's SASRec in its venv and process, with the same hyperparameters as ours."""
    arch, train = settings.architecture, settings.training
    work.mkdir(parents=True, exist_ok=True)
    command = [
        str(python), str(Path(__file__).with_name("recbole_runner.py")),
        "--data-path", str(atomic.resolve()), "--dataset", "beauty",
        "--out", str((work / "recbole").resolve()), "--epochs", str(args.epochs),
        "--batch-size", str(train["batch_size"]), "--threads", str(args.threads),
        "--seed", str(args.seed), "--lr", str(train["lr"]), "--max-len", str(arch["max_len"]),
        "--hidden", str(arch["hidden_size"]), "--inner", str(arch["inner_size"]),
        "--layers", str(arch["n_layers"]), "--heads", str(arch["n_heads"]),
        "--dropout", str(arch["dropout"]), "--attn-dropout", str(arch["attn_dropout"]),
    ]
    env = dict(USER_ENV)
    if args.recbole_runtime == "same":
        env.update({key: os.environ[key] for key in RUNTIME_DEFAULTS})
        command += ["--reuse-freed-memory", str(REPO / "src")]
    subprocess.run(command, check=True, cwd=work, env=env)
    report = json.loads((work / "recbole.json").read_text())
    with np.load(work / "recbole.npz") as states:
        return report, dict(states)


def check_same_validation(ours: EvalSplit, theirs: dict[str, np.ndarray]) -> None:
    """RecBole's validation users, targets and windows must be ours, item for item."""
    for name, mine, other in (("users", ours.split.users, theirs["users"]),
                              ("targets", ours.targets, theirs["targets"]),
                              ("input windows", ours.inputs.numpy(), theirs["inputs"])):
        if mine.shape != other.shape or not np.array_equal(mine, other):
            raise RuntimeError(f"RecBole's validation {name} differ from hybridrec's split")


def full_ranking(hidden: HiddenFn, items: torch.Tensor, data: EvalSplit, num_items: int
                 ) -> dict[str, dict[str, float]]:
    """Validation metrics under full ranking, history items excluded and ranked."""
    targets = torch.from_numpy(data.targets.astype(np.int64))

    def scores(index: torch.Tensor) -> torch.Tensor:
        return hidden(index) @ items.T  # (B, I + 1)

    with torch.no_grad():
        return {name: metrics_from_ranks(rank_full(
                    scores, data.history, targets, num_items, k=1, batch_size=1024,
                    exclude_history=exclude).target_rank)
                for name, exclude in (("history excluded", True), ("history ranked", False))}


def profile_our_step(root: Path, settings: ModelSettings, steps: int) -> dict[str, float]:
    """Seconds per training step by category (training_throughput.py's profiler)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import training_throughput as throughput

    items = pq.read_table(dataset_files(root)["train"], columns=["items"]).column("items")
    num_items = num_items_of(root)
    setup = throughput.Setup("sasrec", settings.architecture,
                             TrainConfig(**settings.training))
    trainer = throughput.Trainer(setup, Sequences.from_arrow(items, num_items))
    return throughput.profile(trainer, steps, True, num_items)


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(row[key]) for row in rows)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", type=Path, default=BEAUTY)
    parser.add_argument("--max-users", type=int, help="the first N users only (a quick check)")
    parser.add_argument("--venv", type=Path, default=REPO / "benchmarks" / ".recbole-venv")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "recbole")
    parser.add_argument("--recbole-runtime", choices=["same", "stock"], default="same",
                        help="RecBole's CPU runtime: ours (OpenMP, MKL, heap) or as started")
    parser.add_argument("--install-only", action="store_true")
    parser.add_argument("--target", type=float, default=3.0, help="speed-up the issue asks for")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="profile our step (default: when the ratio is under --target)")
    parser.add_argument("--profile-steps", type=int, default=20)
    args = parser.parse_args()

    python = recbole_python(args.venv)
    if args.install_only:
        return 0
    root, atomic = args.work / "data", args.work / "atomic"
    preprocess(args.data, root, args.max_users)
    write_atomic(root, atomic, "beauty")
    settings = side_by_side_settings(args)
    num_items = num_items_of(root)
    valid = load_eval_split(root, "valid", settings.architecture["max_len"], [])
    print(f"data: {args.data}{f' (first {args.max_users} users)' if args.max_users else ''}: "
          f"{len(valid.targets)} users, {num_items} items; {os.cpu_count()} CPUs; settings "
          f"{settings.architecture} {settings.training}; threads {args.threads}", flush=True)

    loads = {"ours before": _load()}
    model, history, ours_cpu = train_ours(root, settings, args.work / "ours", args)
    loads["ours after"] = _load()
    theirs, states = run_recbole(python, atomic, settings, args.work, args)
    loads["RecBole after"] = _load()
    check_same_validation(valid, states)
    ours_samples = round(history[0]["samples_per_s"] * history[0]["train_seconds"])
    if ours_samples != theirs["train_samples"]:
        raise RuntimeError(f"training samples differ: ours {ours_samples}, RecBole "
                           f"{theirs['train_samples']}")

    model.eval()
    inputs = valid.inputs
    ours_metrics = full_ranking(lambda index: model.last_hidden(inputs[index]),
                                model.item_embeddings.weight, valid, num_items)
    hidden, table = torch.from_numpy(states["hidden"]), torch.from_numpy(states["item_embeddings"])
    theirs_metrics = full_ranking(lambda index: hidden[index], table, valid, num_items)

    ours_s, theirs_s = _median(history, "train_seconds"), _median(theirs["epochs"], "seconds")
    ratio = theirs_s / ours_s
    print(f"\n== SASRec on {len(valid.targets)} users, {ours_samples} training prefixes per "
          f"epoch, {args.epochs} epochs, {args.threads} threads; load average "
          + "; ".join(f"{k}: {v}" for k, v in loads.items()))
    print(f"RecBole {theirs['versions']} runtime {theirs['runtime']}; ours hybridrec "
          f"{importlib.metadata.version('hybridrec')}, torch {torch.__version__}, runtime "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
          f"MKL_CBWR={os.environ.get('MKL_CBWR')}")
    print("| side | epoch seconds | loss per epoch |")
    print("|---|---|---|")
    print("| RecBole | " + ", ".join(f"{e['seconds']:.1f}" for e in theirs["epochs"])
          + " | " + ", ".join(f"{e['loss']:.4f}" for e in theirs["epochs"]) + " |")
    print("| ours | " + ", ".join(f"{e['train_seconds']:.1f}" for e in history)
          + " | " + ", ".join(f"{e['loss']:.4f}" for e in history) + " |")
    print("process CPU seconds: RecBole per epoch "
          + ", ".join(f"{e['cpu_seconds']:.1f}" for e in theirs["epochs"])
          + f"; ours {ours_cpu:.1f} for all {args.epochs} epochs with their validations")
    print(f"median epoch: RecBole {theirs_s:.1f} s, ours {ours_s:.1f} s: ours {ratio:.2f}x "
          f"faster (target {args.target:.0f}x: {'met' if ratio >= args.target else 'not met'})")
    print("\n| side | validation, full ranking | HR@10 | NDCG@10 | MRR |")
    print("|---|---|---|---|---|")
    for side, metrics in (("RecBole", theirs_metrics), ("ours", ours_metrics)):
        for name, m in metrics.items():
            print(f"| {side} | {name} | {m['hr@10']:.4f} | {m['ndcg@10']:.4f} | {m['mrr']:.4f} |")
    own = theirs["recbole_full_sort"]
    print(f"RecBole's own evaluator (history ranked): NDCG@10 {own['ndcg@10']:.4f}, "
          f"Hit@10 {own['hit@10']:.4f}")
    if args.profile or (args.profile is None and ratio < args.target):
        seconds = profile_our_step(root, settings, args.profile_steps)
        total = sum(seconds.values())
        print(f"\nour training step, torch.profiler ({args.profile_steps} steps of batch "
              f"{settings.training['batch_size']}, trimmed path): {total * 1e3:.1f} ms/step")
        for key, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {key:28s} {value * 1e3:8.1f} ms  {value / total:6.1%}")
    summary = {"ratio": ratio, "recbole": theirs, "ours": history, "ours_cpu": ours_cpu,
               "loads": loads,
               "metrics": {"recbole": theirs_metrics, "ours": ours_metrics},
               "settings": dataclasses.asdict(settings)}
    (args.work / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
