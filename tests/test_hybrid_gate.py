"""The gate: batched training equals one gate at a time and plain PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridrec.cpu import limit_threads
from hybridrec.hybrid.gate import (
    GateHyperparameters,
    fit_standardisation,
    initial_parameters,
    train_gates,
)
from hybridrec.hybrid.gate_file import SelectedGate, load_gate, save_gate

NAMES = ("length", "unique_items", "entropy")


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


TRIALS = [GateHyperparameters(0.05, 16, 25, 0.4), GateHyperparameters(1e-3, 32, 5, 1.2),
          GateHyperparameters(0.01, 16, 60, 0.8), GateHyperparameters(0.1, 8, 15, 1.0),
          GateHyperparameters(3e-3, 32, 40, 0.3)]


@pytest.mark.parametrize("n_branches", [2, 3])
def test_batched_training_equals_one_gate_at_a_time(n_branches: int) -> None:
    x, best = _data(n_branches=n_branches)
    seeds = [11, 12, 13, 14, 15]
    batched = train_gates(x, best, n_branches, TRIALS, seeds, NAMES)
    for gate, trial, seed in zip(batched, TRIALS, seeds, strict=True):
        (alone,) = train_gates(x, best, n_branches, [trial], [seed], NAMES)
        for a, b in zip(gate.layers, alone.layers, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def _plain_pytorch(x: np.ndarray, best: np.ndarray, trial: GateHyperparameters,
                   seed: int) -> list[np.ndarray]:
    """The textbook loop: nn.Sequential, BCEWithLogitsLoss(pos_weight), torch.optim.Adam."""
    mean, scale = fit_standardisation(x)
    inputs = torch.tensor((x - mean) / scale)
    label = torch.tensor((best == 0).astype(float))[:, None]  # 1 = branch 0 (LinRec)
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
    loss = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([trial.pos_weight]).double())
    for _ in range(trial.epochs):
        optimiser.zero_grad()
        loss(net(inputs), label).backward()
        optimiser.step()
    out = []
    for layer in linear:
        out += [layer.weight.detach().numpy().T, layer.bias.detach().numpy()]
    return out


def test_training_equals_plain_pytorch_on_every_row() -> None:
    x, best = _data()
    gates = train_gates(x, best, 2, TRIALS[:3], [1, 2, 3], NAMES, dtype=torch.float64)
    for gate, trial, seed in zip(gates, TRIALS[:3], [1, 2, 3], strict=True):
        with limit_threads(1):
            expected = _plain_pytorch(x, best, trial, seed)
        for a, b in zip(gate.layers, expected, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_training_is_deterministic_and_weights_are_distributions() -> None:
    x, best = _data(n_branches=3)
    first = train_gates(x, best, 3, TRIALS, [5] * 5, NAMES)
    second = train_gates(x, best, 3, TRIALS, [5] * 5, NAMES)
    for a, b in zip(first, second, strict=True):
        for la, lb in zip(a.layers, b.layers, strict=True):
            np.testing.assert_array_equal(la, lb)
    weights = first[0].branch_weights(x)
    assert weights.shape == (len(x), 3)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)


def test_two_branch_gate_gives_alpha_and_its_complement() -> None:
    x, best = _data()
    (gate,) = train_gates(x, best, 2, [TRIALS[2]], [0], NAMES)
    weights = gate.branch_weights(x)
    np.testing.assert_allclose(weights[:, 0], 1.0 / (1.0 + np.exp(-gate.logits(x)[:, 0])))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    # short sequences are labelled branch 0 more often, so alpha falls with length
    assert weights[x[:, 0] < 10, 0].mean() > weights[x[:, 0] > 30, 0].mean()


def test_gate_file_round_trips_bit_for_bit_and_loads_without_pickled_code(tmp_path) -> None:
    x, best = _data()
    (gate,) = train_gates(x, best, 2, [TRIALS[0]], [0], NAMES)
    selected = SelectedGate(gate, ("linrec", "fmlp"), 7, TRIALS[0], 0.125, 99,
                            {"mrr@10": 0.5, "ndcg@10": 0.6, "hr@10": 0.9},
                            {"validation_users": 100, "eligible": 40, "train": 36,
                             "held_out": 4})
    save_gate(selected, tmp_path / "gate.pt")
    again = load_gate(tmp_path / "gate.pt")
    for ours, theirs in zip((*gate.layers, gate.mean, gate.scale),
                            (*again.gate.layers, again.gate.mean, again.gate.scale), strict=True):
        assert ours.dtype == theirs.dtype == np.float64
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(again.gate.branch_weights(x), gate.branch_weights(x))
    assert again == SelectedGate(again.gate, ("linrec", "fmlp"), 7, TRIALS[0], 0.125, 99,
                                 selected.held_out, selected.rows)
    assert again.gate.feature_names == NAMES
    # written from memory, so no (temporary) file name inside the archive: reruns, equal bytes
    save_gate(selected, tmp_path / "again.pt")
    assert (tmp_path / "gate.pt").read_bytes() == (tmp_path / "again.pt").read_bytes()
    torch.load(tmp_path / "gate.pt", weights_only=True)  # plain values and tensors only
