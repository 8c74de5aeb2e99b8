"""The features job: per user, the gate's six features, each branch's rank and the label."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.hybrid.align import AlignedLists, align_sequences, target_ranks
from hybridrec.hybrid.aligned_file import read_aligned
from hybridrec.hybrid.features import best_branch, eligible, sequence_features, winner_categories
from hybridrec.hybrid.list_metrics import TOP_N
from hybridrec.io import write_parquet

log = logging.getLogger(__name__)


def feature_frame(aligned: AlignedLists, split_path: str | Path, user_ids_path: str | Path,
                  dataset: str, split: str) -> pd.DataFrame:
    """Per user: the six features, each branch's rank in its top-10, label and winner category."""
    items, offsets = align_sequences(aligned.users, pd.read_parquet(split_path),
                                     pd.read_parquet(user_ids_path), dataset, split)
    head = aligned.lists[..., :TOP_N]
    ranks = target_ranks(head, aligned.target)  # (U, B), TOP_N + 1 = not in the list
    frame = sequence_features(items, offsets, head, top_n=TOP_N)
    frame.insert(0, "user", aligned.users)
    for b, branch in enumerate(aligned.branches):
        frame[f"rank_{branch}"] = ranks[:, b]
    frame["best_branch"] = best_branch(ranks)
    frame["label"] = (frame["best_branch"] == 0).astype(np.int8)  # paper: 0 when FMLP-Rec wins
    frame["eligible"] = eligible(ranks, TOP_N)
    frame["category"] = winner_categories(ranks, aligned.branches, TOP_N).to_numpy()
    return frame


def run_features(*, aligned_path: str | Path, branches: Sequence[str], split_path: str | Path,
                 user_ids_path: str | Path, dataset: str, protocol: str, split: str,
                 out: str | Path) -> None:
    frame = feature_frame(read_aligned(aligned_path, branches, depth=TOP_N), split_path,
                          user_ids_path, dataset, split)
    counts = frame["category"].value_counts().to_dict()
    log.info("%s/%s/%s: %d users, %d eligible (a branch has the target in its top %d), "
             "winners %s", dataset, protocol, split, len(frame), int(frame["eligible"].sum()),
             TOP_N, counts)
    write_parquet(frame, out)
