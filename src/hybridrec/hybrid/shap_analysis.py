"""Which sequence features drive the gate (paper Section III-B, Fig. 4).

A gate is trained on all six features with fixed settings (200 full-batch Adam steps, the last
weights kept: it is explained, not selected) and explained with SHAP's
``KernelExplainer`` given ``nsamples = 2^F`` and no L1 selection: with six features it then
enumerates all 64 coalitions and returns the exact Shapley values against the sampled background
(the same values as ``shap.explainers.Exact``, which needs a numba compilation of several seconds
per process). Rows to explain and background rows are subsampled with a seed, and
each distinct row is explained once (the features are counts, so rows repeat).

The explained output is branch 0's weight (alpha, LinRec's weight, for two branches); with more
branches every branch weight is explained and the importance of a feature averages over them.
Departure (switch ``hybrid.shap_balanced``; false trains it with ``pos_weight = 1``, a plain
BCE, as the paper's silence suggests): the gate trained here weighs the classes to balance
(``pos_weight = n_other / n_0``), because a gate collapsed onto the majority branch (the paper's
Section VI) would explain little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shap

from hybridrec.cpu import limit_threads
from hybridrec.hybrid.gate import Gate, GateHyperparameters, GateTraining, one_hot, train_gates

SHAP_GATE = GateHyperparameters(lr=1e-2, hidden=32, epochs=200, pos_weight=1.0)
"""The fixed settings of the explained gate; ``pos_weight`` is replaced by the balancing one
unless ``balanced=False``."""
SHAP_TRAINING = GateTraining(batch_size=None, keep="last")


@dataclass(frozen=True)
class ShapResult:
    """SHAP values of the gate's branch weights for a sample of rows."""

    feature_names: tuple[str, ...]
    data: np.ndarray  # (n, F) raw feature values of the explained rows
    values: np.ndarray  # (n, F, O): O = 1 (alpha) for two branches, else one per branch
    base_values: np.ndarray  # (O,) expected output over the background

    def importance(self) -> pd.DataFrame:
        """Mean |SHAP| per feature (over rows and outputs), most important first."""
        mean_abs = np.abs(self.values).mean(axis=(0, 2))
        frame = pd.DataFrame({"feature": list(self.feature_names), "mean_abs_shap": mean_abs})
        return frame.sort_values("mean_abs_shap", ascending=False, kind="stable",
                                 ignore_index=True)

    def top_features(self, k: int = 3) -> list[str]:
        """The ``k`` most important features (the paper keeps three)."""
        return self.importance()["feature"].head(k).tolist()

    def explanation(self, output: int = 0) -> shap.Explanation:
        """A :class:`shap.Explanation` of one output (default: alpha), e.g. for a beeswarm."""
        return shap.Explanation(values=self.values[:, :, output],
                                base_values=np.full(len(self.data), self.base_values[output]),
                                data=self.data, feature_names=list(self.feature_names))


def balancing_pos_weight(best_branch: np.ndarray) -> float:
    """Rows of the other branches per row of branch 0: weighs branch 0 up to parity."""
    positives = int((best_branch == 0).sum())
    return (len(best_branch) - positives) / positives if positives else 1.0


def explain_gate(gate: Gate, features: np.ndarray, background: int = 100, explain: int = 500,
                 seed: int = 0, threads: int = 1) -> ShapResult:
    """Exact SHAP values of ``gate``'s weights on up to ``explain`` rows of ``features`` (raw)."""
    with limit_threads(threads):
        return _explain_gate(gate, features, background, explain, seed)


def _explain_gate(gate: Gate, features: np.ndarray, background: int, explain: int,
                  seed: int) -> ShapResult:
    rng = np.random.default_rng(seed)
    n = len(features)
    background_rows = np.sort(rng.choice(n, size=min(background, n), replace=False))
    explained_rows = np.sort(rng.choice(n, size=min(explain, n), replace=False))
    two = gate.n_branches == 2

    def model(x: np.ndarray) -> np.ndarray:
        weights = gate.branch_weights(x)
        return weights[:, 0] if two else weights

    data = features[explained_rows]
    distinct, inverse = np.unique(data, axis=0, return_inverse=True)  # equal rows, equal values
    explainer = shap.KernelExplainer(model, features[background_rows])
    raw = explainer.shap_values(distinct, nsamples=2 ** data.shape[1], l1_reg=False, silent=True)
    values = _as_rows_features_outputs(raw, len(distinct), data.shape[1])
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    return ShapResult(tuple(gate.feature_names), data, values[inverse.reshape(-1)], base)


def shap_importance(features: pd.DataFrame, best_branch: np.ndarray, n_branches: int,
                    feature_names: Sequence[str] | None = None, settings: GateHyperparameters =
                    SHAP_GATE, background: int = 100, explain: int = 500,
                    seed: int = 0, balanced: bool = True) -> tuple[Gate, ShapResult]:
    """Train the explained gate on ``features`` (default: all their columns) and explain it.

    ``balanced`` replaces ``settings.pos_weight`` by :func:`balancing_pos_weight`.
    """
    names = tuple(feature_names or features.columns)
    x = features.loc[:, list(names)].to_numpy(dtype=np.float64)
    if balanced:
        settings = GateHyperparameters(settings.lr, settings.hidden, settings.epochs,
                                       balancing_pos_weight(best_branch))
    gate = train_gates(x, one_hot(best_branch, n_branches), [settings], [seed], names,
                       training=SHAP_TRAINING)[0].gate
    return gate, explain_gate(gate, x, background=background, explain=explain, seed=seed)


def _as_rows_features_outputs(raw: object, n_rows: int, n_features: int) -> np.ndarray:
    """SHAP values as (n, F, O), whether shap returned one array or a list per output."""
    if isinstance(raw, list):
        return np.stack([np.asarray(v, dtype=np.float64) for v in raw], axis=-1)
    return np.asarray(raw, dtype=np.float64).reshape(n_rows, n_features, -1)
