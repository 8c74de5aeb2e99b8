"""Digests of every file the data and hybrid jobs write on a small synthetic dataset, to check
that a change to them keeps their outputs byte for byte.

The jobs run in-process, outside Snakemake (so no provenance record enters the files): the
demo generator and preprocessing, both sampled protocols' candidates, the synthetic exports of
``synthetic_exports.py``, then align, features, SHAP, a two-shard gate search, gather and fusion
under ``full`` and ``uniform99``. Run it once with the package of each commit and compare:

    PYTHONPATH=<old checkout>/src python benchmarks/scale/same_outputs.py <scratch folder> > old.txt
    PYTHONPATH=src python benchmarks/scale/same_outputs.py <another scratch folder> > new.txt
    diff old.txt new.txt     # no output: every file identical
"""

from __future__ import annotations

import argparse
import hashlib
import os
import runpy
import sys
from pathlib import Path

from hybridrec.data.sources import load_raw, preprocess_config
from hybridrec.data.store import write_candidates, write_dataset
from hybridrec.jobs.align import run_align
from hybridrec.jobs.features import run_features
from hybridrec.jobs.fusion import run_fusion
from hybridrec.jobs.gate_search import run_gather, run_search_shard
from hybridrec.jobs.shap import run_shap

EXPORTER = Path(__file__).with_name("synthetic_exports.py")
BRANCHES = ["linrec", "fmlp"]
SEED = 42


def run_jobs(users: int, items: int, trials: int) -> None:
    """Every job, writing under ``results/`` of the current directory."""
    entry = {"format": "demo", "demo": {"users": users, "items": items, "seed": 7}}
    root = Path("results/data/scale")
    write_dataset(load_raw(entry, None), preprocess_config(entry), root, dataset="scale")
    for protocol in ("uniform99", "pop100"):
        write_candidates(root, protocol, seed=SEED, dataset="scale")
    sys.argv = [str(EXPORTER), str(root), "--dataset", "scale", "--seed", str(SEED)]
    runpy.run_path(str(EXPORTER), run_name="__main__")
    for protocol in ("full", "uniform99"):
        run = Path(f"results/hybrid/scale/{protocol}")
        for split in ("valid", "test"):
            exports = {b: f"results/predictions/scale/{b}/{protocol}/{split}.parquet"
                       for b in BRANCHES}
            run_align(exports, dict.fromkeys(BRANCHES, protocol), "scale", split,
                      run / f"aligned/{split}.parquet")
            run_features(run / f"aligned/{split}.parquet", BRANCHES,
                         root / f"split/{split}.parquet", root / "user_ids.parquet", "scale",
                         protocol, split, run / f"features/{split}.parquet")
        run_shap(run / "features/valid.parquet", BRANCHES, 3, SEED, run / "shap.json",
                 run / "shap.png", "SHAP")
        shards = [(run / f"search/shard{s}.parquet", run / f"search/shard{s}.gate.pt")
                  for s in range(2)]
        for s, (table, gate) in enumerate(shards):
            run_search_shard(run / "aligned/valid.parquet", run / "features/valid.parquet",
                             run / "shap.json", BRANCHES, protocol, trials, s, len(shards), 0.1,
                             SEED, table, gate)
        run_gather([t for t, _ in shards], [g for _, g in shards], run / "search/trials.parquet",
                   run / "search/best.json", run / "search/gate.pt", run / "search/study.db",
                   run / "search.png", "search", "search")
        run_fusion(run / "evaluation.json", run / "alpha_test.parquet", run / "fused_test.parquet",
                   run / "alpha.png", title="alpha", aligned_valid=run / "aligned/valid.parquet",
                   aligned_test=run / "aligned/test.parquet",
                   features_test=run / "features/test.parquet", gate_path=run / "search/gate.pt",
                   branches=BRANCHES, seed=SEED, fusion_seeds=[0, 1, 2, 3, 4],
                   bootstrap_resamples=2000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path, help="an empty folder for the results")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(args.workdir)
    run_jobs(args.users, args.items, args.trials)
    for path in sorted(Path("results").rglob("*")):
        if path.is_file():
            print(hashlib.sha256(path.read_bytes()).hexdigest(), path)


if __name__ == "__main__":
    main()
