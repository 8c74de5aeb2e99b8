"""The align job: every branch's export of one protocol, joined on original user and item ids."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from hybridrec.errors import DataFormatError
from hybridrec.export import read_predictions
from hybridrec.hybrid.align import AlignedLists, align_branches
from hybridrec.hybrid.aligned_file import write_aligned

log = logging.getLogger(__name__)


def align_exports(prediction_paths: Mapping[str, str | Path], protocols: Mapping[str, str],
                  dataset: str, split: str) -> AlignedLists:
    """Read each branch's export and its own id tables (named in its metadata), then align.

    ``protocols`` names the protocol each branch's export must have been ranked under.
    """
    exports, user_maps, item_maps = {}, {}, {}
    for branch, path in prediction_paths.items():
        frame, meta = read_predictions(path)
        if meta["protocol"] != protocols[branch]:
            raise DataFormatError(path, f"ranked under {meta['protocol']!r}, but the hybrid "
                                        f"needs {branch}'s {protocols[branch]!r} export")
        exports[branch] = frame
        user_maps[branch] = pd.read_parquet(meta["user_ids"])
        item_maps[branch] = pd.read_parquet(meta["item_ids"])
    aligned = align_branches(exports, user_maps, item_maps, dataset=dataset, split=split)
    log.info("%s/%s: %d users aligned across %s (%s), k = %d", dataset, split, aligned.n_users,
             ", ".join(aligned.branches),
             ", ".join(f"{b} {protocols[b]}" for b in aligned.branches), aligned.k)
    return aligned


def run_align(prediction_paths: Mapping[str, str | Path], protocols: Mapping[str, str],
              dataset: str, split: str, out: str | Path) -> None:
    write_aligned(align_exports(prediction_paths, protocols, dataset, split), protocols, out)
