"""The gate: batched training equals one gate at a time and plain PyTorch (full batch and
mini-batches, the best epoch kept); tree gates predict as scikit-learn; gate files round-trip."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hybridrec.cpu import limit_threads
from hybridrec.hybrid.features import branch_labels
from hybridrec.hybrid.gate import (
    GateHyperparameters,
    GateTraining,
    epoch_orders,
    fit_standardisation,
    initial_parameters,
    one_hot,
    train_gates,
)
from hybridrec.hybrid.gate_file import SelectedGate, load_gate, save_gate
from hybridrec.hybrid.tree_gate import BOOSTING, FOREST, fit_tree_gate

NAMES = ("length", "unique_items", "entropy")
FULL_BATCH_LAST = GateTraining(batch_size=None, keep="last")


def _data(n: int = 600, n_branches: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Count-like features (rows repeat) and a class that depends on them, noisily."""
    rng = np.random.default_rng(seed)
    length = rng.integers(3, 40, n).astype(float)
    unique = np.minimum(length, rng.integers(2, 40, n)).astype(float)
    entropy = np.log2(unique).round(1)
    x = np.stack([length, unique, entropy], axis=1)
    score = (length - 20) / 10 + rng.normal(0, 1, n)
    best = np.digitize(score, np.linspace(-1, 1, n_branches - 1)) if n_branches > 2 else \
        (score > 0.5).astype(int)
    return x, best.astype(np.int64)


def _split(n: int = 600, n_branches: int = 2, seed: int = 0):
    """Training rows and held-out rows, labels one-hot."""
    x, best = _data(n, n_branches, seed)
    labels = one_hot(best, n_branches)
    cut = int(0.8 * n)
    return x[:cut], labels[:cut], (x[cut:], labels[cut:])


TRIALS = [GateHyperparameters(0.05, 16, 25, 0.4), GateHyperparameters(1e-3, 32, 5, 1.2),
          GateHyperparameters(0.01, 16, 12, 0.8), GateHyperparameters(0.1, 8, 15, 1.0),
          GateHyperparameters(3e-3, 32, 20, 0.3)]


@pytest.mark.parametrize("n_branches", [2, 3])
@pytest.mark.parametrize("training", [GateTraining(), FULL_BATCH_LAST,
                                      GateTraining(batch_size=64, focal_gamma=2.0)])
def test_batched_training_equals_one_gate_at_a_time(n_branches: int,
                                                    training: GateTraining) -> None:
    x, labels, held_out = _split(n_branches=n_branches)
    seeds = [11, 12, 13, 14, 15]
    batched = train_gates(x, labels, TRIALS, seeds, NAMES, held_out=held_out, training=training)
    for trained, trial, seed in zip(batched, TRIALS, seeds, strict=True):
        (alone,) = train_gates(x, labels, [trial], [seed], NAMES, held_out=held_out,
                               training=training)
        assert trained.epoch == alone.epoch
        for a, b in zip(trained.gate.layers, alone.gate.layers, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def _plain_pytorch(x: np.ndarray, labels: np.ndarray, trial: GateHyperparameters, seed: int,
                   training: GateTraining,
                   held_out: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> tuple[list[np.ndarray], int, list[np.ndarray]]:
    """The textbook loop: nn.Sequential, the loss written out (BCEWithLogitsLoss(pos_weight)
    for gamma 0, on soft labels), torch.optim.Adam, mini-batches in ``epoch_orders``' order;
    after every epoch the held-out loss, and a copy of the weights where it is lowest.

    Returns the kept weights, the kept epoch and the last epoch's weights."""
    mean, scale = fit_standardisation(x)
    inputs = torch.tensor((x - mean) / scale)
    label = torch.tensor(labels[:, :1])  # 1 = branch 0 (LinRec)
    h = trial.hidden
    linear = [torch.nn.Linear(3, h), torch.nn.Linear(h, h), torch.nn.Linear(h, 1)]
    net = torch.nn.Sequential(linear[0], torch.nn.ReLU(), linear[1], torch.nn.ReLU(),
                              linear[2]).double()
    start = initial_parameters(3, h, 1, seed)
    with torch.no_grad():
        for j, layer in enumerate(linear):
            layer.weight.copy_(torch.tensor(start[2 * j].T))
            layer.bias.copy_(torch.tensor(start[2 * j + 1]))
    optimiser = torch.optim.Adam(net.parameters(), lr=trial.lr)
    gamma, pos_weight = training.focal_gamma, torch.tensor([trial.pos_weight]).double()

    def loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if gamma == 0:
            return torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)(z, y)
        p = torch.sigmoid(z)
        return -(pos_weight * y * (1 - p) ** gamma * torch.log(p)
                 + (1 - y) * p ** gamma * torch.log(1 - p)).mean()

    def weights() -> list[np.ndarray]:
        out = []
        for layer in linear:
            out += [layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()]
        return out

    orders = epoch_orders(seed, len(x))
    kept, kept_epoch, best = weights(), 0, np.inf
    for epoch in range(1, trial.epochs + 1):
        if training.batch_size is None:
            batches = [np.arange(len(x))]
        else:
            order = next(orders)
            batches = [order[i:i + training.batch_size]
                       for i in range(0, len(x), training.batch_size)]
        for rows in batches:
            optimiser.zero_grad()
            loss(net(inputs[rows]), label[rows]).backward()
            optimiser.step()
        if held_out is not None:
            with torch.no_grad():
                valid = loss(net(torch.tensor((held_out[0] - mean) / scale)),
                             torch.tensor(held_out[1][:, :1])).item()
            if valid < best:
                best, kept, kept_epoch = valid, copy.deepcopy(weights()), epoch
    return (kept, kept_epoch, weights()) if held_out is not None else \
        (weights(), trial.epochs, weights())


def test_full_batch_training_equals_plain_pytorch_on_every_row() -> None:
    x, best = _data()
    labels = one_hot(best, 2)
    trained = train_gates(x, labels, TRIALS[:3], [1, 2, 3], NAMES, training=FULL_BATCH_LAST,
                          dtype=torch.float64)
    for gate, trial, seed in zip(trained, TRIALS[:3], [1, 2, 3], strict=True):
        with limit_threads(1):
            expected, epoch, _ = _plain_pytorch(x, labels, trial, seed, FULL_BATCH_LAST)
        assert gate.epoch == epoch == trial.epochs
        for a, b in zip(gate.gate.layers, expected, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_mini_batches_keep_the_weights_of_the_epoch_with_the_lowest_held_out_loss(
        gamma: float) -> None:
    """A gate that overfits (high learning rate, few noisy rows): the held-out loss bottoms out
    early, and the kept weights are that epoch's, as a plain loop that keeps them finds."""
    x, labels, held_out = _split(n=400, seed=3)
    x, labels = x[:120], labels[:120]
    trial = GateHyperparameters(lr=0.05, hidden=32, epochs=40, pos_weight=0.7)
    training = GateTraining(batch_size=32, keep="best", focal_gamma=gamma)
    (trained,) = train_gates(x, labels, [trial], [7], NAMES, held_out=held_out,
                             training=training, dtype=torch.float64)
    with limit_threads(1):
        kept, epoch, last = _plain_pytorch(x, labels, trial, 7, training, held_out)
    assert 1 <= epoch < trial.epochs, "the test needs a held-out loss that rises again"
    assert trained.epoch == epoch
    for ours, theirs in zip(trained.gate.layers, kept, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)
    assert max(np.abs(a - b).max() for a, b in zip(kept, last, strict=True)) > 1e-3
    (kept_last,) = train_gates(x, labels, [trial], [7], NAMES, held_out=held_out,
                               training=GateTraining(batch_size=32, keep="last",
                                                     focal_gamma=gamma), dtype=torch.float64)
    assert kept_last.epoch == trial.epochs
    for ours, final in zip(kept_last.gate.layers, last, strict=True):
        np.testing.assert_allclose(ours, final, atol=1e-6, rtol=0)


def test_soft_labels_train_as_bce_on_the_shared_label() -> None:
    """Ties labelled 0.5 (hybrid.tie_label: half): the loss is BCE on the soft label."""
    rng = np.random.default_rng(5)
    x, _ = _data(300, seed=5)
    ranks = rng.integers(1, 4, size=(300, 2))  # many ties
    labels = branch_labels(ranks, "half")
    assert (labels[:, 0] == 0.5).sum() > 50
    trial = GateHyperparameters(0.01, 16, 6, 0.9)
    training = GateTraining(batch_size=50, keep="last")
    (trained,) = train_gates(x, labels, [trial], [3], NAMES, training=training,
                             dtype=torch.float64)
    with limit_threads(1):
        expected, _, _ = _plain_pytorch(x, labels, trial, 3, training)
    for a, b in zip(trained.gate.layers, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_training_is_deterministic_and_weights_are_distributions() -> None:
    x, labels, held_out = _split(n_branches=3)
    first = train_gates(x, labels, TRIALS, [5] * 5, NAMES, held_out=held_out)
    second = train_gates(x, labels, TRIALS, [5] * 5, NAMES, held_out=held_out)
    for a, b in zip(first, second, strict=True):
        assert a.epoch == b.epoch
        for la, lb in zip(a.gate.layers, b.gate.layers, strict=True):
            np.testing.assert_array_equal(la, lb)
    weights = first[0].gate.branch_weights(x)
    assert weights.shape == (len(x), 3)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)


def test_two_branch_gate_gives_alpha_and_its_complement() -> None:
    x, labels, held_out = _split()
    (trained,) = train_gates(x, labels, [TRIALS[2]], [0], NAMES, held_out=held_out)
    gate = trained.gate
    weights = gate.branch_weights(x)
    np.testing.assert_allclose(weights[:, 0], 1.0 / (1.0 + np.exp(-gate.logits(x)[:, 0])))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    # short sequences are labelled branch 0 more often, so alpha falls with length
    assert weights[x[:, 0] < 10, 0].mean() > weights[x[:, 0] > 30, 0].mean()


@pytest.mark.parametrize("n_branches", [2, 3])
@pytest.mark.parametrize(("kind", "settings"), [
    (FOREST, {"n_estimators": 10, "max_depth": 6, "min_samples_leaf": 3}),
    (BOOSTING, {"learning_rate": 0.1, "max_iter": 20, "max_leaf_nodes": 8,
                "min_samples_leaf": 5})])
def test_tree_gates_predict_as_scikit_learn(kind: str, settings: dict,
                                            n_branches: int) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    x, best = _data(n_branches=n_branches)
    labels = one_hot(best, n_branches)
    labels[::7] = 1.0 / n_branches  # a few shared labels
    gate = fit_tree_gate(kind, x, labels, settings, pos_weight=0.6, seed=4,
                         feature_names=NAMES)
    row, branch = np.nonzero(labels > 0)
    weight = labels[row, branch] * np.where(branch == 0, 0.6, 1.0)
    model = (RandomForestClassifier(**settings, random_state=4) if kind == FOREST else
             HistGradientBoostingClassifier(**settings, early_stopping=False, random_state=4))
    model.fit(x[row], branch, sample_weight=weight)
    probe = np.vstack([x, x + 0.5, x[:5] * 100.0])  # between and beyond the training values
    np.testing.assert_allclose(gate.branch_weights(probe), model.predict_proba(probe),
                               atol=1e-12, rtol=0)
    # pos_weight on branch 0 raises its weight
    heavier = fit_tree_gate(kind, x, labels, settings, pos_weight=3.0, seed=4,
                            feature_names=NAMES)
    assert heavier.branch_weights(x)[:, 0].mean() > gate.branch_weights(x)[:, 0].mean()


def _selected(gate, settings: dict, epoch: int | None) -> SelectedGate:
    return SelectedGate(gate, ("linrec", "fmlp"), 7, settings, 0.125, 99,
                        {"mrr@10": 0.5, "ndcg@10": 0.6, "hr@10": 0.9, "val_loss": 0.6},
                        {"validation_users": 100, "eligible": 40, "train": 36,
                         "trained_on": 30, "held_out": 4}, "val_loss", epoch,
                        {"tie_label": "first", "rebalance": None})


def test_gate_file_round_trips_bit_for_bit_and_loads_without_pickled_code(tmp_path) -> None:
    x, labels, held_out = _split()
    (trained,) = train_gates(x, labels, [TRIALS[0]], [0], NAMES, held_out=held_out)
    gate = trained.gate
    selected = _selected(gate, {"lr": 0.05, "hidden": 16, "epochs": 25, "pos_weight": 0.4},
                         trained.epoch)
    save_gate(selected, tmp_path / "gate.pt")
    again = load_gate(tmp_path / "gate.pt")
    for ours, theirs in zip((*gate.layers, gate.mean, gate.scale),
                            (*again.gate.layers, again.gate.mean, again.gate.scale), strict=True):
        assert ours.dtype == theirs.dtype == np.float64
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(again.gate.branch_weights(x), gate.branch_weights(x))
    assert again == SelectedGate(again.gate, selected.branches, 7, selected.settings, 0.125, 99,
                                 selected.held_out, selected.rows, "val_loss", trained.epoch,
                                 selected.training)
    assert again.gate.feature_names == NAMES and again.kind == "mlp"
    # written from memory, so no (temporary) file name inside the archive: reruns, equal bytes
    save_gate(selected, tmp_path / "again.pt")
    assert (tmp_path / "gate.pt").read_bytes() == (tmp_path / "again.pt").read_bytes()
    torch.load(tmp_path / "gate.pt", weights_only=True)  # plain values and tensors only


@pytest.mark.parametrize(("kind", "settings"), [
    (FOREST, {"n_estimators": 5, "max_depth": 4, "min_samples_leaf": 2}),
    (BOOSTING, {"learning_rate": 0.1, "max_iter": 10, "max_leaf_nodes": 8,
                "min_samples_leaf": 5})])
def test_tree_gate_files_predict_what_was_stored(tmp_path, kind: str, settings: dict) -> None:
    x, best = _data()
    gate = fit_tree_gate(kind, x, one_hot(best, 2), settings, 0.5, 1, NAMES)
    save_gate(_selected(gate, {**settings, "pos_weight": 0.5}, None), tmp_path / "gate.pt")
    again = load_gate(tmp_path / "gate.pt")
    assert again.kind == kind and again.epoch is None
    np.testing.assert_array_equal(again.gate.branch_weights(x), gate.branch_weights(x))
    torch.load(tmp_path / "gate.pt", weights_only=True)
