"""The SHAP job: which of the six features drive a gate (paper Fig. 4). It runs whatever
``hybrid.features`` chooses; with ``shap`` the search keeps the top ``hybrid.shap_top_k``."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.features import FEATURES
from hybridrec.hybrid.shap_analysis import shap_importance
from hybridrec.io import write_json
from hybridrec.reporting.figures import plot_shap_beeswarm

log = logging.getLogger(__name__)


def require_both_labels(best_branch: np.ndarray, branches: Sequence[str],
                        where: str | Path) -> None:
    """Refuse a gate whose training labels are all one branch: it would have nothing to learn."""
    winners = np.unique(best_branch)
    if len(winners) < 2:
        only = branches[int(winners[0])] if len(winners) else None
        detail = (f"{only} is the better branch for every one of the {len(best_branch)} users "
                  f"with a hit, so the gate's labels are all one class" if only is not None
                  else "no user has the target in any branch's top 10")
        raise HybridrecError(
            f"{where}: {detail}; a gate has nothing to learn. Check the other branches' "
            f"exports, or fuse branches that each win for some users (hybrid.branches)")


def run_shap(*, features_path: str | Path, branches: Sequence[str], seed: int,
             balanced: bool, summary_path: str | Path, figure_path: str | Path,
             title: str) -> None:
    """Explain a gate trained on all six features (eligible validation rows); write the mean
    |SHAP| per feature, its ranking (most important first) and Fig. 4."""
    frame = pd.read_parquet(features_path)
    rows = frame[frame["eligible"]]
    require_both_labels(rows["best_branch"].to_numpy(), branches, features_path)
    _, result = shap_importance(rows.loc[:, list(FEATURES)], rows["best_branch"].to_numpy(),
                                len(branches), seed=seed, balanced=balanced)
    importance = result.importance()
    log.info("%d of %d validation users eligible; mean |SHAP|: %s", len(rows), len(frame),
             ", ".join(f"{f} {v:.4f}" for f, v in importance.itertuples(index=False)))
    plot_shap_beeswarm(result.explanation(), figure_path, weighted_branch=branches[0],
                       title=title, seed=seed)
    write_json({"importance": dict(importance.itertuples(index=False)),
                "ranking": importance["feature"].tolist(), "rows": len(rows)}, summary_path)


def shap_ranking(summary_path: str | Path) -> list[str]:
    """The six features, most important first (``hybrid.features: shap`` keeps the top k)."""
    return list(json.loads(Path(summary_path).read_text())["ranking"])
