"""Random search: sampling, data split, tie labels, rebalancing, gate kinds, sharding, both
selection rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.align import PAD
from hybridrec.hybrid.features import sequence_features
from hybridrec.hybrid.gate import GateTraining
from hybridrec.hybrid.search import (
    MLP,
    PARAMETERS,
    SEARCH_SPACES,
    SELECTIONS,
    best_row,
    gate_settings,
    gate_training_data,
    gather,
    held_out_loss,
    rebalance,
    run_shard,
    sample_trials,
    trial_seed,
    write_study,
)
from hybridrec.hybrid.tree_gate import BOOSTING, FOREST

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
    assert PARAMETERS == ("lr", "hidden", "epochs", "pos_weight", "noise")
    assert first["trial"].tolist() == list(range(200))
    assert first["lr"].between(1e-5, 1e-1).all()
    assert set(first["hidden"]) <= {16, 32, 64, 128}
    assert set(first["epochs"]) <= {5, 15, 25, 50, 100, 250}
    assert first["pos_weight"].between(0.25, 1.5).all()
    assert first["noise"].between(0.0, 0.25).all()
    assert (np.log10(first["lr"]) < -3).mean() > 0.3  # log scale: half the draws below 1e-3


@pytest.mark.parametrize("gate", [FOREST, BOOSTING])
def test_tree_gates_search_their_own_settings_and_the_papers_pos_weight_and_noise(gate) -> None:
    trials = sample_trials(50, seed=2, space=SEARCH_SPACES[gate])
    assert list(trials.columns) == ["trial", *SEARCH_SPACES[gate].names]
    assert trials["pos_weight"].between(0.25, 1.5).all()
    assert trials["noise"].between(0.0, 0.25).all()
    assert trials["min_samples_leaf"].dtype == np.int64
    assert set(gate_settings(trials.iloc[0], gate)) == set(SEARCH_SPACES[gate].names) - {"noise"}


def test_training_data_is_eligible_and_stratified() -> None:
    features, lists, target = _synthetic(1000)
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=3)
    for part in (train, held_out):
        hit = (part.lists[..., :10] == part.target[:, None, None]).any(axis=(1, 2))
        assert hit.all(), "only rows where a branch lists the target"
    n = len(train.target) + len(held_out.target)
    assert len(held_out.target) == pytest.approx(0.1 * n, abs=1)
    share_train = train.labels[:, 0].mean()
    share_held = held_out.labels[:, 0].mean()
    assert abs(share_train - share_held) < 1.5 / len(held_out.target)
    assert train.features.shape[1] == 3 and train.feature_names == tuple(FEATURES)


def _tied(n_users: int = 1000) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """As _synthetic, with a fifth of the users' targets at the same rank in both lists."""
    features, lists, target = _synthetic(n_users)
    tie = np.arange(n_users) % 5 == 0
    lists[tie, 0, 3], lists[tie, 1, 3] = target[tie], target[tie]
    lists[tie, :, :3] = np.arange(3) + 600  # nothing above the target
    return features, lists, target


@pytest.mark.parametrize(("tie", "label"), [("first", 1.0), ("second", 0.0), ("half", 0.5)])
def test_ties_are_labelled_as_configured_and_stratified(tie: str, label: float) -> None:
    from hybridrec.hybrid.align import target_ranks

    features, lists, target = _tied()
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=3, tie=tie)
    ranks = target_ranks(train.lists, train.target)
    tied = ranks[:, 0] == ranks[:, 1]
    assert tied.sum() > 100
    np.testing.assert_array_equal(train.labels[tied, 0], label)
    # the rest: the branch with the better rank, whatever the tie rule
    np.testing.assert_array_equal(train.labels[~tied, 0], ranks[~tied, 0] < ranks[~tied, 1])
    np.testing.assert_allclose(train.labels.sum(axis=1), 1.0)
    if tie == "half":  # a class of its own, in both parts in proportion
        assert (held_out.labels[:, 0] == 0.5).mean() == pytest.approx(
            (train.labels[:, 0] == 0.5).mean(), abs=2 / len(held_out.target))


@pytest.mark.parametrize("share", [0.55, 0.6])
def test_rebalancing_undersamples_the_largest_class_to_its_share(share: float) -> None:
    features, lists, target = _synthetic(2000)
    train, _ = gate_training_data(features, FEATURES, lists, target, seed=3)
    majority = np.bincount(train.labels.argmax(axis=1)).argmax()
    assert (train.labels.argmax(axis=1) == majority).mean() > 0.62
    balanced = rebalance(train, share, seed=3)
    largest = (balanced.labels.argmax(axis=1) == majority)
    assert largest.mean() == pytest.approx(share, abs=1 / len(balanced.target))
    minority = train.labels.argmax(axis=1) != majority
    assert (~largest).sum() == minority.sum()  # the other class is kept whole
    rows = {tuple(r) for r in np.column_stack([balanced.features, balanced.target])}
    assert rows <= {tuple(r) for r in np.column_stack([train.features, train.target])}
    again = rebalance(train, share, seed=3)
    np.testing.assert_array_equal(again.target, balanced.target)
    assert rebalance(train, 0.9, seed=3) is train  # already below the share: unchanged


def test_training_data_needs_two_rows_per_class() -> None:
    features, lists, target = _synthetic(50)
    lists[:, 0] = PAD  # LinRec is the better branch for one user only
    lists[0, 0, 0] = target[0]
    lists[0, 1] = PAD
    with pytest.raises(HybridrecError, match=r"valid.parquet \(full\): .* \{0: 1, 1: .*"
                                             r"hybrid.held_out"):
        gate_training_data(features, FEATURES, lists, target, where="valid.parquet (full)")


def test_few_hits_as_under_full_ranking_still_train_and_score_a_gate() -> None:
    """Full ranking: most users have no hit in either top 10; the few that do are the rows."""
    features, lists, target = _synthetic(1000)
    rng = np.random.default_rng(4)
    misses = rng.random(len(target)) < 0.95  # keep about 50 users with a hit
    lists[misses] = np.where(lists[misses] == target[misses, None, None], 9999, lists[misses])
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=0)
    rows = len(train.target) + len(held_out.target)
    assert 20 < rows < 90 and len(held_out.target) >= 2
    params = sample_trials(4, seed=1).assign(epochs=5)
    table, gates = run_shard(params, 0, 1, train, held_out, seed=5)
    assert len(gates) == 4 and table[["mrr@10", "ndcg@10", "val_loss"]].notna().all().all()
    # two rows, one per class, cannot be split into two stratified parts
    few = np.isin(np.arange(len(target)), [np.flatnonzero(~misses)[:2]])
    with pytest.raises(HybridrecError, match="users have the target in a branch's top 10"):
        gate_training_data(features, FEATURES, np.where(few[:, None, None], lists, 9999),
                           target)


def test_training_data_keeps_the_top_10_of_deeper_exports() -> None:
    features, lists, target = _synthetic(300)
    deep = np.concatenate([lists, np.full((300, 2, 90), 7777)], axis=2)  # a top-100 export
    deep[:, :, 50] = target[:, None]  # a hit at rank 51 is no hit for the gate
    shallow_train, _ = gate_training_data(features, FEATURES, lists, target, seed=2)
    deep_train, _ = gate_training_data(features, FEATURES, deep, target, seed=2)
    np.testing.assert_array_equal(deep_train.lists, shallow_train.lists)
    assert deep_train.lists.shape[2] == 10


@pytest.mark.parametrize("held_out", [1e-6, 0.999999])
def test_a_held_out_share_that_empties_a_part_names_the_key(held_out: float) -> None:
    features, lists, target = _synthetic(200)
    with pytest.raises(HybridrecError, match=r"set hybrid\.held_out \(now [^)]+\) "
                                             r"between 0\.0\d+ and 0\.9\d+"):
        gate_training_data(features, FEATURES, lists, target, held_out=held_out)


def test_shards_are_deterministic_and_gather_picks_the_best_under_each_rule() -> None:
    features, lists, target = _synthetic()
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=0)
    params = sample_trials(12, seed=1)
    params["epochs"] = np.minimum(params["epochs"], 15)  # keep the test fast
    shards = [run_shard(params, i, 3, train, held_out, seed=5)[0] for i in range(3)]
    again, _ = run_shard(params, 1, 3, train, held_out, seed=5)
    pd.testing.assert_frame_equal(shards[1], again)
    assert sorted(shards[1]["trial"]) == [1, 4, 7, 10]
    assert shards[1]["epoch"].between(0, 15).all()

    table, best = gather([shards[2], shards[0], shards[1]])
    assert table["trial"].tolist() == list(range(12))
    by_mrr = table.sort_values(["mrr@10", "ndcg@10", "trial"], ascending=[False, False, True])
    assert best["mrr"]["trial"] == by_mrr["trial"].iloc[0]
    assert best["val_loss"]["trial"] == table.loc[table["val_loss"].idxmin(), "trial"]
    assert set(best) == set(SELECTIONS) == {"val_loss", "mrr"}
    whole, _ = run_shard(params, 0, 1, train, held_out, seed=5)
    # a gate trained beside other trials equals its retraining only up to rounding: hence the
    # stored gate (gate.pt) rather than a retrained one
    pd.testing.assert_frame_equal(whole, table, check_exact=False, atol=1e-6)
    with pytest.raises(HybridrecError, match="more than one shard"):
        gather([shards[0], shards[0]])


def test_the_held_out_loss_is_the_plain_log_loss_of_the_soft_labels() -> None:
    weights = np.array([[0.8, 0.2], [0.5, 0.5], [1.0, 0.0]])
    labels = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    expected = -(np.log(0.8) + np.log(0.5) + np.log(1e-15)) / 3  # a zero weight is clipped
    assert held_out_loss(weights, labels) == pytest.approx(expected)


@pytest.mark.parametrize("gate", [FOREST, BOOSTING])
def test_tree_gates_are_searched_and_scored_like_the_mlp(gate: str) -> None:
    features, lists, target = _synthetic()
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=0)
    params = sample_trials(6, seed=1, space=SEARCH_SPACES[gate])
    table, gates = run_shard(params, 0, 2, train, held_out, seed=5, gate=gate)
    assert table["trial"].tolist() == [0, 2, 4] and "epoch" not in table
    assert {type(g).__name__ for g in gates} == {"TreeGate"}
    for model, (_, row) in zip(gates, table.iterrows(), strict=True):
        weights = model.branch_weights(held_out.features)
        assert row["val_loss"] == held_out_loss(weights, held_out.labels)
        assert row["alpha_mean"] == float(weights[:, 0].mean())


def test_focal_loss_and_full_batch_training_reach_the_gates() -> None:
    features, lists, target = _synthetic()
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=0)
    params = sample_trials(3, seed=1).assign(epochs=5, lr=0.01)
    runs = {name: run_shard(params, 0, 1, train, held_out, seed=5, training=training)
            for name, training in (("default", GateTraining(batch_size=32)),
                                   ("focal", GateTraining(batch_size=32, focal_gamma=2.0)),
                                   ("full_batch", GateTraining(batch_size=None)))}
    base = runs["default"][1][0].layers[0]
    for name in ("focal", "full_batch"):
        assert not np.array_equal(runs[name][1][0].layers[0], base), name


@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_the_stored_gate_is_the_scored_gate_bit_for_bit(tmp_path, selection: str) -> None:
    """The search's best gate, saved and loaded, fuses the held-out rows to its exact score."""
    from hybridrec.hybrid.fusion import draw_fusion_randomness, fuse_vectorised
    from hybridrec.hybrid.gate_file import SelectedGate, load_gate, save_gate
    from hybridrec.hybrid.list_metrics import per_user_list_metrics

    features, lists, target = _synthetic()
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=0)
    params = sample_trials(8, seed=3).assign(epochs=15)
    table, gates = run_shard(params, 0, 1, train, held_out, seed=5)
    best = best_row(table, selection)
    row = table.iloc[best]
    save_gate(SelectedGate(gates[best], ("linrec", "fmlp"), int(row["trial"]),
                           gate_settings(row, MLP), float(row["noise"]),
                           trial_seed(5, int(row["trial"])), {}, {}, selection,
                           int(row["epoch"])), tmp_path / "gate.pt")
    stored = load_gate(tmp_path / "gate.pt")
    draws = draw_fusion_randomness(len(held_out.target), 2, 10, np.random.default_rng([5, 1]))
    weights = stored.gate.branch_weights(held_out.features)
    np.testing.assert_array_equal(weights, gates[best].branch_weights(held_out.features))
    fused = fuse_vectorised(held_out.lists, weights, draws, 10, stored.noise)
    scores = per_user_list_metrics(fused, held_out.target)
    assert float(scores["mrr@10"].mean()) == row["mrr@10"]  # exactly what the search scored
    assert float(scores["ndcg@10"].mean()) == row["ndcg@10"]
    assert held_out_loss(weights, held_out.labels) == row["val_loss"]
    assert float(weights[:, 0].mean()) == row["alpha_mean"]
    assert stored.selection == selection and stored.epoch == row["epoch"]


def test_the_search_is_stored_as_an_optuna_study(tmp_path) -> None:
    import optuna

    features, lists, target = _synthetic()
    train, held_out = gate_training_data(features, FEATURES, lists, target, seed=0)
    params = sample_trials(6, seed=1).assign(epochs=5)
    table, best = gather([run_shard(params, 0, 1, train, held_out, seed=5)[0]])
    space = SEARCH_SPACES[MLP]
    write_study(table, tmp_path / "study.db", "gate search demo full", space, "val_loss")
    write_study(table, tmp_path / "again.db", "gate search demo full", space, "val_loss")
    assert (tmp_path / "study.db").read_bytes() == (tmp_path / "again.db").read_bytes()
    study = optuna.load_study(study_name="gate search demo full",
                              storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.number for t in study.trials] == table["trial"].tolist()
    for trial, (_, row) in zip(study.trials, table.iterrows(), strict=True):
        assert trial.values == [row["mrr@10"], row["ndcg@10"]]
        assert trial.params == {p: row[p] for p in PARAMETERS}
        assert trial.user_attrs["alpha_mean"] == row["alpha_mean"]
        assert trial.user_attrs["val_loss"] == row["val_loss"]
    assert study.user_attrs["selection"] == "val_loss"
    assert study.user_attrs["selected_trial"] == best["val_loss"]["trial"]
    assert study.user_attrs["best_trials"] == {rule: int(row["trial"])
                                               for rule, row in best.items()}
    assert not list(tmp_path.glob(".*tmp"))


def test_ties_go_to_the_lower_trial_number() -> None:
    table = pd.DataFrame({"trial": [0, 1, 2], "mrr@10": [0.2, 0.3, 0.3],
                          "ndcg@10": [0.1, 0.4, 0.4], "val_loss": [0.7, 0.5, 0.5]})
    _, best = gather([table.iloc[[2]], table.iloc[[0, 1]]])
    assert best["mrr"]["trial"] == 1 and best["val_loss"]["trial"] == 1
