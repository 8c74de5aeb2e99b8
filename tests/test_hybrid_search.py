"""Random search: sampling, data split, sharding, selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.align import PAD
from hybridrec.hybrid.features import sequence_features
from hybridrec.hybrid.search import (
    PARAMETERS,
    SearchSpace,
    gate_training_data,
    gather,
    run_shard,
    sample_trials,
    to_study,
    train_selected_gate,
)

FEATURES = ["length", "unique_items", "entropy"]


def _synthetic(n_users: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features, two-branch lists and targets; FMLP (branch 1) hits more often, as in Table VI."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 30, n_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(0, 40, offsets[-1])
    target = rng.integers(1000, 2000, n_users)
    lists = rng.integers(0, 500, size=(n_users, 2, 10))
    hits = rng.random((n_users, 2)) < [0.3, 0.5]
    position = rng.integers(0, 10, size=(n_users, 2))
    for b in range(2):
        lists[hits[:, b], b, position[hits[:, b], b]] = target[hits[:, b]]
    return sequence_features(items, offsets, lists), lists, target


def test_sample_trials_is_deterministic_and_within_the_paper_ranges() -> None:
    first = sample_trials(200, seed=7)
    pd.testing.assert_frame_equal(first, sample_trials(200, seed=7))
    assert not first.equals(sample_trials(200, seed=8))
    assert list(first.columns) == ["trial", *PARAMETERS]
    assert first["trial"].tolist() == list(range(200))
    space = SearchSpace()
    assert first["lr"].between(*space.lr).all()
    assert set(first["hidden"]) <= set(space.hidden)
    assert set(first["epochs"]) <= set(space.epochs)
    assert first["pos_weight"].between(*space.pos_weight).all()
    assert first["noise"].between(*space.noise).all()
    assert (np.log10(first["lr"]) < -3).mean() > 0.3  # log scale: half the draws below 1e-3


def test_training_data_is_eligible_and_stratified() -> None:
    features, lists, target = _synthetic(1000)
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=3)
    for part in (train, held_out):
        hit = (part.lists[..., :10] == part.target[:, None, None]).any(axis=(1, 2))
        assert hit.all(), "only rows where a branch lists the target"
    n = len(train.target) + len(held_out.target)
    assert len(held_out.target) == pytest.approx(0.1 * n, abs=1)
    share_train = (train.best_branch == 0).mean()
    share_held = (held_out.best_branch == 0).mean()
    assert abs(share_train - share_held) < 1.5 / len(held_out.target)
    assert train.features.shape[1] == 3 and train.feature_names == tuple(FEATURES)


def test_training_data_needs_two_rows_per_class() -> None:
    features, lists, target = _synthetic(50)
    lists[:, 0] = PAD  # LinRec is the better branch for one user only
    lists[0, 0, 0] = target[0]
    lists[0, 1] = PAD
    with pytest.raises(HybridrecError, match=r"cannot stratify .* \{0: 1, 1: "):
        gate_training_data(features, FEATURES, lists, target)


@pytest.mark.parametrize("held_out", [1e-6, 0.999999])
def test_a_held_out_share_that_empties_a_part_names_the_key(held_out: float) -> None:
    features, lists, target = _synthetic(200)
    with pytest.raises(HybridrecError, match=r"hybrid\.held_out: .* set hybrid\.held_out "
                                             r"between 0\.0\d+ and 0\.9\d+"):
        gate_training_data(features, FEATURES, lists, target, held_out=held_out)


def test_shards_are_deterministic_and_gather_picks_the_best() -> None:
    features, lists, target = _synthetic()
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=0)
    params = sample_trials(12, seed=1)
    params["epochs"] = np.minimum(params["epochs"], 15)  # keep the test fast
    shards = [run_shard(params, i, 3, train, held_out, seed=5) for i in range(3)]
    again = run_shard(params, 1, 3, train, held_out, seed=5)
    pd.testing.assert_frame_equal(shards[1], again)
    assert sorted(shards[1]["trial"]) == [1, 4, 7, 10]

    table, best = gather([shards[2], shards[0], shards[1]])
    assert table["trial"].tolist() == list(range(12))
    ranked = table.sort_values(["mrr@10", "ndcg@10", "trial"], ascending=[False, False, True])
    assert best["trial"] == ranked["trial"].iloc[0]
    whole = run_shard(params, 0, 1, train, held_out, seed=5)
    pd.testing.assert_frame_equal(whole, table, check_exact=False, atol=1e-12)

    gate = train_selected_gate(best, train, 2, seed=5)
    assert gate.feature_names == tuple(FEATURES)
    with pytest.raises(HybridrecError, match="more than one shard"):
        gather([shards[0], shards[0]])
    assert len(to_study(table).trials) == 12


def test_ties_go_to_the_lower_trial_number() -> None:
    table = pd.DataFrame({"trial": [0, 1, 2], "mrr@10": [0.2, 0.3, 0.3],
                          "ndcg@10": [0.1, 0.4, 0.4]})
    _, best = gather([table.iloc[[2]], table.iloc[[0, 1]]])
    assert best["trial"] == 1
