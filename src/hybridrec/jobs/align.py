"""The align job: every branch's export of one protocol, joined on original user and item ids."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.errors import DataFormatError
from hybridrec.evaluation.export import read_predictions
from hybridrec.hybrid.align import JoinedBranches, branch_in_original_ids, join_parts
from hybridrec.hybrid.aligned_file import write_aligned

log = logging.getLogger(__name__)


def join_exports(prediction_paths: Mapping[str, str | Path], protocols: Mapping[str, str],
                 dataset: str, split: str) -> JoinedBranches:
    """Read each branch's export and its own id tables (named in its metadata), then join them
    on original ids.

    ``protocols`` names the protocol each branch's export must have been ranked under.
    """
    parts = {}
    for branch, path in prediction_paths.items():  # one export in memory at a time
        frame, meta = read_predictions(path)
        if meta["protocol"] != protocols[branch]:
            raise DataFormatError(path, f"ranked under {meta['protocol']!r}, but the hybrid "
                                        f"needs {branch}'s {protocols[branch]!r} export")
        parts[branch] = branch_in_original_ids(frame, pd.read_parquet(meta["user_ids"]),
                                               pd.read_parquet(meta["item_ids"]), branch,
                                               dataset, split)
        del frame
    joined = join_parts(parts, dataset, split)
    depth = max(int(np.diff(p.offsets).max(initial=0)) for p in joined.parts.values())
    log.info("%s/%s: %d users aligned across %s (%s), k = %d", dataset, split,
             len(joined.users), ", ".join(joined.parts),
             ", ".join(f"{b} {protocols[b]}" for b in joined.parts), depth)
    return joined


def run_align(*, prediction_paths: Mapping[str, str | Path], protocols: Mapping[str, str],
              dataset: str, split: str, out: str | Path) -> None:
    write_aligned(join_exports(prediction_paths, protocols, dataset, split), protocols, out)
