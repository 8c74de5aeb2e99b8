"""Evaluate the selected gate on every test user (paper Table V), with uncertainty.

Every test user counts, including those no branch hits. Metrics come from the target's position
in a top-10 list (:mod:`hybridrec.hybrid.list_metrics`), for the single branches, the hybrid,
other gates (the trial another selection rule picked) and any baseline lists alike. A gate's
lists are fused once per fusion seed; its table row is the mean over seeds (with their standard
deviation). Every method that is not a single branch (the hybrid, the other gates, each baseline;
a gate's per-user values averaged over seeds) gets a paired bootstrap against the better single
branch of each metric: users are resampled with replacement, the same resamples for every
method and metric, and the interval is the percentile interval of the mean difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from hybridrec.cpu import limit_threads
from hybridrec.hybrid.fusion import fuse
from hybridrec.hybrid.gate import GateModel
from hybridrec.hybrid.list_metrics import KEYS, per_user_list_metrics
from hybridrec.plain import plain

HYBRID = "hybrid"
ALPHA_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_CHUNK = 256  # bootstrap resamples per vectorised block, at most
_BLOCK_CELLS = 1 << 22  # and at most this many resampled users per block (memory)


@dataclass(frozen=True)
class HybridEvaluation:
    """Test-split results of the hybrid against its branches and baselines."""

    methods: pd.DataFrame  # method, mrr@10, ndcg@10, hr@10, *_std (hybrid only), users
    per_seed: pd.DataFrame  # fusion seed, mrr@10, ndcg@10, hr@10
    bootstrap: pd.DataFrame  # method, metric, baseline, difference, low, high, resamples,
    #                          confidence: every method but the single branches
    weights: np.ndarray  # (U, B) the gate's branch weights per test user
    per_user: dict[str, np.ndarray]  # the hybrid's per-user metrics, averaged over seeds

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest (no NaN)."""
        return {"methods": _records(self.methods), "per_seed": _records(self.per_seed),
                "bootstrap": _records(self.bootstrap),
                "alpha_mean": float(self.weights[:, 0].mean()),
                "alpha_std": float(self.weights[:, 0].std())}


def evaluate_hybrid(gate: GateModel, features: pd.DataFrame, lists: np.ndarray,
                    target: np.ndarray, branches: Sequence[str], noise_range: float,
                    fusion_seeds: Sequence[int],
                    baselines: Mapping[str, np.ndarray] | None = None,
                    other_gates: Mapping[str, tuple[GateModel, float]] | None = None,
                    top_n: int = 10, n_resamples: int = 2000, confidence: float = 0.95,
                    seed: int = 0, threads: int = 1) -> HybridEvaluation:
    """Fuse every test user's lists with ``gate`` and compare with the single branches.

    ``features`` holds at least the gate's feature columns, one row per user of ``lists``
    (U, B, k); ``other_gates`` maps method names to further gates and their noise ranges,
    fused like the hybrid (rows after it); ``baselines`` maps method names to their (U, n)
    lists (oracle, constant alpha, score fusion, ...), evaluated the same way.
    """
    weights, runs = fused_runs(gate, features, lists, target, noise_range, fusion_seeds,
                               top_n, threads)
    per_seed = pd.DataFrame([{"seed": s, **{k: float(r[k].mean()) for k in KEYS}}
                             for s, r in zip(fusion_seeds, runs, strict=True)])
    seed_runs = {HYBRID: runs, **{name: fused_runs(other, features, lists, target, noise,
                                                   fusion_seeds, top_n, threads)[1]
                                  for name, (other, noise) in (other_gates or {}).items()}}
    fused = {name: {k: np.mean([r[k] for r in method_runs], axis=0) for k in KEYS}
             for name, method_runs in seed_runs.items()}
    hybrid = fused[HYBRID]

    singles = {name: per_user_list_metrics(lists[:, b, :top_n], target)
               for b, name in enumerate(branches)}
    others = {name: per_user_list_metrics(extra, target)
              for name, extra in (baselines or {}).items()}
    rows = [{"method": name, **{k: float(v[k].mean()) for k in KEYS}}
            for name, v in {**singles, **fused, **others}.items()]
    methods = pd.DataFrame(rows)
    for k in KEYS:
        spread = {name: float(np.std([r[k].mean() for r in method_runs], ddof=1))
                  if len(method_runs) > 1 else 0.0 for name, method_runs in seed_runs.items()}
        methods[f"{k}_std"] = methods["method"].map(spread).fillna(0.0)
    methods["users"] = len(target)

    better = {k: max(singles, key=lambda name: singles[name][k].mean())
              for k in KEYS[:2]}  # mrr@10, ndcg@10
    comparisons = [(name, k, better[k], values[k] - singles[better[k]][k])
                   for name, values in {**fused, **others}.items() for k in better]
    low_high = paired_bootstrap([diff for *_, diff in comparisons], n_resamples, confidence,
                                seed)
    bootstrap = pd.DataFrame([
        {"method": name, "metric": k, "baseline": baseline, "difference": float(diff.mean()),
         "low": float(low), "high": float(high), "resamples": n_resamples,
         "confidence": confidence}
        for (name, k, baseline, diff), (low, high) in zip(comparisons, low_high, strict=True)])
    return HybridEvaluation(methods, per_seed, bootstrap, weights, hybrid)


def fused_runs(gate: GateModel, features: pd.DataFrame, lists: np.ndarray, target: np.ndarray,
               noise_range: float, fusion_seeds: Sequence[int], top_n: int = 10,
               threads: int = 1) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """The gate's branch weights (U, B) and, per fusion seed, the fused lists' per-user metrics.

    The hybrid's Table V row is the mean over seeds of these metrics' means.
    """
    with limit_threads(threads):
        weights = gate.branch_weights(features.loc[:, list(gate.feature_names)].to_numpy())
    runs = [per_user_list_metrics(fuse(lists, weights, top_n, noise_range, s), target)
            for s in fusion_seeds]
    return weights, runs


def alpha_distribution(alpha: np.ndarray, length: np.ndarray) -> dict[str, float | None]:
    """The gate's alpha over users: mean, max, :data:`ALPHA_QUANTILES`, and Fig. 6's trend as
    the Spearman correlation of alpha with sequence length (None where alpha or length is
    constant)."""
    quantiles = np.quantile(alpha, ALPHA_QUANTILES)
    rho = float(spearmanr(alpha, length).statistic) if (np.ptp(alpha) > 0
                                                        and np.ptp(length) > 0) else None
    return {"mean": float(alpha.mean()), "max": float(alpha.max()),
            **{f"q{round(100 * q):02d}": float(v)
               for q, v in zip(ALPHA_QUANTILES, quantiles, strict=True)},
            "spearman_length": rho}


def paired_bootstrap(differences: Sequence[np.ndarray], n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0,
                     block_cells: int = _BLOCK_CELLS) -> list[tuple[float, float]]:
    """Percentile interval of the mean of each per-user difference vector, all (U,) long.

    Every vector is resampled with the same user indices, so intervals of several metrics come
    from the same bootstrap samples. Resamples are drawn in blocks of at most ``block_cells``
    user indices (memory stays flat in the users); the blocks read the generator's stream in
    the same order whatever their size, so the intervals do not depend on it.
    """
    stacked = np.stack(differences)  # (M, U)
    n_users = stacked.shape[1]
    rng = np.random.default_rng(seed)
    means = np.empty((len(stacked), n_resamples))
    per_block = max(1, min(_CHUNK, block_cells // max(n_users, 1)))
    for first in range(0, n_resamples, per_block):
        size = min(per_block, n_resamples - first)
        index = rng.integers(0, n_users, size=(size, n_users))
        means[:, first:first + size] = stacked[:, index].mean(axis=2)
    tail = (1.0 - confidence) / 2.0
    bounds = np.quantile(means, [tail, 1.0 - tail], axis=1)  # (2, M)
    return [(float(lo), float(hi)) for lo, hi in bounds.T]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
