"""Test-split evaluation, the paired bootstrap, SHAP importance and the figures."""

from __future__ import annotations

from itertools import combinations
from math import factorial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec.hybrid.baselines import oracle_lists
from hybridrec.hybrid.evaluate import (
    HYBRID,
    alpha_distribution,
    evaluate_hybrid,
    paired_bootstrap,
)
from hybridrec.hybrid.gate import Gate, GateHyperparameters, GateTraining, one_hot, train_gates
from hybridrec.hybrid.shap_analysis import ShapResult, explain_gate, shap_importance
from hybridrec.reporting.figures import (
    normalised_length,
    plot_alpha_vs_length,
    plot_search_landscape,
    plot_shap_beeswarm,
)

NAMES = ("length", "unique_items", "entropy")


def _constant_gate(alpha_logit: float) -> Gate:
    """A gate whose alpha is sigmoid(alpha_logit) for every input."""
    h = 4
    layers = (np.zeros((3, h)), np.zeros(h), np.zeros((h, h)), np.zeros(h), np.zeros((h, 1)),
              np.array([alpha_logit]))
    return Gate(NAMES, 2, np.zeros(3), np.ones(3), layers)


def _test_split(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(rng.integers(1, 30, size=(n, 3)).astype(float), columns=NAMES)
    target = rng.integers(0, 20, n)
    lists = np.stack([np.stack([rng.permutation(20)[:10] for _ in range(2)]) for _ in range(n)])
    return features, lists, target


def test_a_gate_stuck_on_linrec_reproduces_linrec() -> None:
    features, lists, target = _test_split()
    result = evaluate_hybrid(_constant_gate(50.0), features, lists, target, ["linrec", "fmlp"],
                             noise_range=0.0, fusion_seeds=[0, 1, 2],
                             baselines={"oracle": oracle_lists(lists, target)},
                             n_resamples=200)
    rows = result.methods.set_index("method")
    assert list(rows.index) == ["linrec", "fmlp", HYBRID, "oracle"]
    assert rows.loc[HYBRID, "mrr@10"] == pytest.approx(rows.loc["linrec", "mrr@10"])
    assert rows.loc[HYBRID, "mrr@10_std"] == 0.0
    assert rows.loc["oracle", "mrr@10"] >= rows[["mrr@10"]].drop("oracle").max().item()
    assert len(result.per_seed) == 3 and (rows["users"] == len(target)).all()
    np.testing.assert_allclose(result.weights[:, 0], 1.0)
    summary = result.summary()
    assert {b["metric"] for b in summary["bootstrap"]} == {"mrr@10", "ndcg@10"}


def test_hybrid_varies_over_fusion_seeds_with_a_middling_gate() -> None:
    features, lists, target = _test_split()
    result = evaluate_hybrid(_constant_gate(0.0), features, lists, target, ["linrec", "fmlp"],
                             noise_range=0.1, fusion_seeds=[0, 1, 2, 3], n_resamples=200)
    assert result.per_seed["mrr@10"].nunique() > 1
    row = result.methods.set_index("method").loc[HYBRID]
    assert row["mrr@10"] == pytest.approx(result.per_seed["mrr@10"].mean())
    assert row["mrr@10_std"] == pytest.approx(result.per_seed["mrr@10"].std(ddof=1))


def test_the_gate_another_rule_picked_is_fused_beside_the_hybrid() -> None:
    features, lists, target = _test_split()
    result = evaluate_hybrid(_constant_gate(0.0), features, lists, target, ["linrec", "fmlp"],
                             noise_range=0.1, fusion_seeds=[0, 1, 2],
                             other_gates={"hybrid (mrr)": (_constant_gate(50.0), 0.0)},
                             baselines={"oracle": oracle_lists(lists, target)},
                             n_resamples=200)
    rows = result.methods.set_index("method")
    assert list(rows.index) == ["linrec", "fmlp", HYBRID, "hybrid (mrr)", "oracle"]
    # the other gate (alpha 1, no noise) is LinRec's list, the same for every seed
    assert rows.loc["hybrid (mrr)", "mrr@10"] == pytest.approx(rows.loc["linrec", "mrr@10"])
    assert rows.loc["hybrid (mrr)", "mrr@10_std"] == 0.0 < rows.loc[HYBRID, "mrr@10_std"]
    # every method but the branches gets its interval against the better branch; the selected
    # gate's is the same with or without the others (the same resamples)
    intervals = result.bootstrap.set_index(["method", "metric"])
    assert set(intervals.index.get_level_values("method")) == {HYBRID, "hybrid (mrr)", "oracle"}
    better = rows.loc[["linrec", "fmlp"], "mrr@10"].max()
    assert intervals.loc[("oracle", "mrr@10"), "difference"] == pytest.approx(
        rows.loc["oracle", "mrr@10"] - better)
    assert intervals.loc[("oracle", "mrr@10"), "low"] >= 0.0  # the oracle never loses a user
    alone = evaluate_hybrid(_constant_gate(0.0), features, lists, target, ["linrec", "fmlp"],
                            noise_range=0.1, fusion_seeds=[0, 1, 2], n_resamples=200)
    selected = result.bootstrap[result.bootstrap["method"] == HYBRID].reset_index(drop=True)
    pd.testing.assert_frame_equal(selected, alone.bootstrap)


def test_alpha_distribution_summarises_alpha_and_its_trend_with_length() -> None:
    length = np.arange(1, 101, dtype=float)
    falling = alpha_distribution(1.0 / length, length)
    assert falling["spearman_length"] == pytest.approx(-1.0)
    assert falling["max"] == 1.0 and falling["mean"] == pytest.approx(np.mean(1.0 / length))
    assert falling["q05"] <= falling["q25"] <= falling["q50"] <= falling["q75"] <= falling["q95"]
    assert alpha_distribution(np.full(100, 0.2), length)["spearman_length"] is None


def test_paired_bootstrap() -> None:
    constant = np.full(500, 0.25)
    assert paired_bootstrap([constant], 300) == [(0.25, 0.25)]
    rng = np.random.default_rng(0)
    diff = rng.normal(0.1, 1.0, 2000)
    first = paired_bootstrap([diff, -diff], 1000, seed=4)
    assert first == paired_bootstrap([diff, -diff], 1000, seed=4)
    (low, high), (neg_low, neg_high) = first
    assert low < diff.mean() < high
    assert high - low == pytest.approx(2 * 1.96 / np.sqrt(2000), rel=0.15)
    assert (neg_low, neg_high) == pytest.approx((-high, -low))  # same resamples
    # blocks of any size read the same resamples (memory stays flat in the users)
    for block_cells in (1, 2000, 3 * 2000 + 7):
        assert paired_bootstrap([diff, -diff], 1000, seed=4, block_cells=block_cells) == first


def _brute_force_shapley(f, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Shapley values with feature-independent masking: absent features from the background."""
    n_features = len(x)

    def value(subset: tuple[int, ...]) -> float:
        rows = background.copy()
        rows[:, list(subset)] = x[list(subset)]
        return float(f(rows).mean())

    phi = np.zeros(n_features)
    for i in range(n_features):
        others = [j for j in range(n_features) if j != i]
        for size in range(n_features):
            for subset in combinations(others, size):
                weight = factorial(size) * factorial(n_features - size - 1) / factorial(
                    n_features)
                phi[i] += weight * (value(tuple(sorted(subset + (i,)))) - value(subset))
    return phi


def test_shap_values_are_exact_shapley_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, size=(300, 3)).astype(float)
    best = (x[:, 0] + rng.normal(0, 3, 300) > 10).astype(np.int64)
    (trained,) = train_gates(x, one_hot(best, 2), [GateHyperparameters(0.01, 8, 30, 1.0)], [0],
                             NAMES, training=GateTraining(batch_size=None, keep="last"))
    gate = trained.gate
    result = explain_gate(gate, x, background=15, explain=6, seed=1)
    background = x[np.sort(np.random.default_rng(1).choice(300, 15, replace=False))]
    for row, values in zip(result.data, result.values[:, :, 0], strict=True):
        expected = _brute_force_shapley(lambda r: gate.branch_weights(r)[:, 0], row, background)
        np.testing.assert_allclose(values, expected, atol=1e-8)


def test_shap_importance_ranks_the_informative_feature_first() -> None:
    rng = np.random.default_rng(1)
    features = pd.DataFrame(rng.integers(1, 15, size=(400, 3)).astype(float), columns=NAMES)
    best = (features["entropy"] > 7).astype(np.int64).to_numpy()
    _, result = shap_importance(features, best, 2, background=20, explain=40, seed=0)
    assert result.top_features(1) == ["entropy"]
    assert list(result.importance().columns) == ["feature", "mean_abs_shap"]


def test_the_explained_gate_balances_the_branches_unless_switched_off() -> None:
    rng = np.random.default_rng(2)
    features = pd.DataFrame(rng.integers(1, 15, size=(400, 3)).astype(float), columns=NAMES)
    best = (rng.random(400) < 0.8).astype(np.int64)  # branch 0 best for a fifth of the users
    x = features.to_numpy()
    balanced, _ = shap_importance(features, best, 2, background=10, explain=10, seed=0)
    plain, _ = shap_importance(features, best, 2, background=10, explain=10, seed=0,
                               balanced=False)
    # pos_weight 4 on branch 0 lifts its weight towards parity; pos_weight 1 leaves it low
    assert balanced.branch_weights(x)[:, 0].mean() > plain.branch_weights(x)[:, 0].mean() + 0.1


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_are_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shap_result = ShapResult(NAMES, rng.random((50, 3)), rng.normal(size=(50, 3, 1)),
                             np.array([0.4]))
    plot_shap_beeswarm(shap_result.explanation(), tmp_path / "beeswarm.png", "linrec",
                       title="toy")
    lengths = rng.integers(3, 100, 200)
    plot_alpha_vs_length(rng.random(200), normalised_length(lengths), tmp_path / "alpha.png",
                         "linrec")
    trials = pd.DataFrame({"trial": range(30), "lr": 10 ** rng.uniform(-5, -1, 30),
                           "hidden": rng.choice([16, 32, 64, 128], 30),
                           "epochs": rng.choice([5, 15, 25, 50, 100, 250], 30),
                           "pos_weight": rng.uniform(0.25, 1.5, 30),
                           "noise": rng.uniform(0, 0.25, 30), "mrr@10": rng.random(30),
                           "ndcg@10": rng.random(30), "alpha_mean": rng.random(30)})
    plot_search_landscape(trials, tmp_path / "search.png", "linrec", selected_trial=7,
                          selection="mrr")
    for name in ("beeswarm.png", "alpha.png", "search.png"):
        assert _is_png(tmp_path / name)
