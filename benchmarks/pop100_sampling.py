"""How much the pop100 protocol's sampler moves a model's figures: ours against RecBole's.

The hybrid paper reports LinRec under RecBole's ``pop100`` evaluation. RecBole 1.2.1
(``recbole/sampler/sampler.py``: ``Sampler._get_candidates_list``, ``_pop_sampling``,
``sample_by_key_ids``) draws the 100 negatives of a user independently, WITH replacement, each
in proportion to the item's count over the interactions of every phase (train, valid and test),
redrawing any item the user has interacted with up to that phase; so a popular item can stand
several times among one user's 100 candidates, and every copy that outscores the target pushes
it down a rank. Ours (``hybridrec.data.candidates``, ``pop100``) draws 100 DISTINCT negatives in
proportion to popularity (successive sampling) from the items the user never touched.

This script ranks one trained model's test targets both ways, on the same model and split:

1. ours: the candidates file the pipeline wrote (``candidates/test.pop100.parquet``), the
   pipeline's own ``rank_split``;
2. RecBole's: negatives drawn as RecBole draws them (seeded, ``--draws`` independent draws),
   the target ranked among its own score and the 100 negatives' scores with every copy counted
   (``1 + #(negative scores >= target score)``, our pessimistic tie rule; exact ties of
   float32 scores are rare).

    python benchmarks/pop100_sampling.py --run RUN --dataset beauty-fmlp --model linrec

Prints HR@10, NDCG@10, MRR@10 and MRR for both, and how many distinct negatives RecBole's
draws leave per user. Reads RUN/results (a finished run: model, split, candidates); writes
nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hybridrec.cpu import configure_cpu_runtime

configure_cpu_runtime()  # before torch loads MKL, as the evaluate rule does

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hybridrec.evaluation.evaluate import load_eval_split, rank_split  # noqa: E402
from hybridrec.evaluation.metrics import metrics_from_ranks  # noqa: E402
from hybridrec.models.files import read_model  # noqa: E402

REPORTED = ("hr@10", "ndcg@10", "mrr@10", "mrr")


def recbole_negatives(counts: np.ndarray, used: list[np.ndarray], num: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(U, num) negatives as RecBole's popularity sampler draws them: with replacement, by
    count, each draw that hits a used item redrawn."""
    probabilities = counts / counts.sum()
    out = rng.choice(len(counts), size=(len(used), num), p=probabilities)
    for row, seen in enumerate(used):
        bad = np.isin(out[row], seen)
        while bad.any():
            out[row, bad] = rng.choice(len(counts), size=int(bad.sum()), p=probabilities)
            bad = np.isin(out[row], seen)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a workflow folder with results/")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--draws", type=int, default=3, help="independent RecBole-style draws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()

    root = args.run / "results" / "data" / args.dataset
    saved = read_model(args.run / "results" / "models" / args.dataset / args.model / "model.pt")
    model = saved.build("pop100")  # the weights selected under pop100
    data = load_eval_split(root, "test", model.max_len, ["pop100"])
    ours = rank_split(model, data, "pop100", k=10, batch_size=args.batch_size).target_rank

    # every interaction of the dataset: the test inputs plus their targets are each user's
    # whole sequence (leave-one-out), which is what RecBole's three phases hold together
    split = data.split
    sequences = [split.items[split.offsets[u]:split.offsets[u + 1]]
                 for u in range(len(split.offsets) - 1)]
    everything = [np.append(seq, target) for seq, target in zip(sequences, data.targets,
                                                                 strict=True)]
    counts = np.bincount(np.concatenate(everything), minlength=model.num_items + 1)
    counts[0] = 0  # padding is never a candidate

    @torch.no_grad()
    def scores(rows: np.ndarray) -> np.ndarray:
        return model.logits(model.last_hidden(data.inputs[torch.from_numpy(rows)])).numpy()

    model.eval()
    rng = np.random.default_rng(args.seed)
    recbole: list[dict[str, float]] = []
    distinct: list[float] = []
    for _ in range(args.draws):
        negatives = recbole_negatives(counts, everything, 100, rng)
        distinct.append(float(np.mean([len(np.unique(row)) for row in negatives])))
        ranks = np.empty(len(negatives), dtype=np.int64)
        for start in range(0, len(negatives), args.batch_size):
            rows = np.arange(start, min(start + args.batch_size, len(negatives)))
            logits = scores(rows)
            target = logits[np.arange(len(rows)), data.targets[rows]]
            negative = np.take_along_axis(logits, negatives[rows], axis=1)
            ranks[rows] = 1 + (negative >= target[:, None]).sum(axis=1)
        recbole.append(metrics_from_ranks(ranks))
    report = {
        "model": args.model, "dataset": args.dataset, "users": len(ours),
        "ours_pop100": {key: metrics_from_ranks(ours)[key] for key in REPORTED},
        "recbole_pop100": {key: float(np.mean([m[key] for m in recbole])) for key in REPORTED},
        "recbole_pop100_std": {key: float(np.std([m[key] for m in recbole])) for key in REPORTED},
        "recbole_draws": args.draws,
        "recbole_distinct_negatives_per_user": float(np.mean(distinct)),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
