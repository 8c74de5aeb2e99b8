"""Two models of a finished run, user by user: the difference of their test metrics with a paired
bootstrap interval, under each protocol both were exported under.

    python experiments/model_gap.py --run . --dataset beauty-fmlp m2rec mamba4rec sasrec

compares the first model with each of the others. It reads the exports
(``results/predictions/{dataset}/{model}/{protocol}/test.parquet``: each test user's target rank),
so both models are scored on the same users against the same candidates, and resamples the users
as the hybrid's interval does (:func:`hybridrec.hybrid.evaluate.paired_bootstrap`). Prints a
Markdown table; nothing in the run changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.evaluation.metrics import per_user_metrics
from hybridrec.hybrid.evaluate import paired_bootstrap

METRICS = ("hr@10", "ndcg@10", "mrr@10")


def user_metrics(run: Path, dataset: str, model: str, protocol: str) -> pd.DataFrame:
    """Per-user test metrics of one model's export under one protocol, indexed by user."""
    export = pd.read_parquet(run / "results" / "predictions" / dataset / model / protocol
                             / "test.parquet", columns=["user", "target_rank"])
    values = per_user_metrics(export["target_rank"].to_numpy())
    return pd.DataFrame({m: values[m] for m in METRICS}, index=export["user"].to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("."), help="the run's root folder")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("models", nargs="+", help="the model, then those it is compared with")
    args = parser.parse_args()
    first, others = args.models[0], args.models[1:]
    root = args.run / "results" / "predictions" / args.dataset
    print(f"{args.dataset}, test users: {first} minus each other model, mean difference "
          f"(paired bootstrap 95%, {args.resamples} resamples)\n")
    print("| protocol | other | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for protocol in sorted(p.name for p in (root / first).iterdir() if p.is_dir()):
        ours = user_metrics(args.run, args.dataset, first, protocol)
        for other in others:
            if not (root / other / protocol).is_dir():
                continue
            theirs = user_metrics(args.run, args.dataset, other, protocol).loc[ours.index]
            differences = [(ours[m] - theirs[m]).to_numpy() for m in METRICS]
            intervals = paired_bootstrap(differences, args.resamples, seed=args.seed)
            cells = [f"{np.mean(d):+.4f} ({lo:+.4f}, {hi:+.4f})"
                     for d, (lo, hi) in zip(differences, intervals, strict=True)]
            print(f"| {protocol} | {other} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
