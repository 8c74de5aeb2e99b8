"""The gate: sequence features -> one weight per branch; many gates trained in one pass.

Architecture (paper Section III-C, Fig. 5): ``Linear(F, H) -> ReLU -> Linear(H, H) -> ReLU ->
Linear(H, O)``. With two branches ``O = 1`` and ``alpha = sigmoid(logit)`` is branch 0's
(LinRec's) weight; with ``B > 2`` branches ``O = B`` and the weights are ``softmax(logits)``.

Loss, on soft labels ``t`` (n, B) (:func:`hybridrec.hybrid.features.branch_labels`), averaged over
rows: ``-sum_b w_b (1 - p_b)^gamma t_b log p_b`` with class weight ``w = (pos_weight, 1, ...)``.
``gamma = 0`` is the paper's ``BCEWithLogits(pos_weight)`` on the label ``t_0`` for two branches
(cross-entropy for more); ``gamma > 0`` is the focal loss (Lin et al., 2017), one of Section
V-C's proposals (``hybrid.loss``).

Training (the paper states only "training the model to achieve the lowest validation loss",
l.372; optimiser and batching are ours):

- Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8); ReLU; PyTorch's default
  ``nn.Linear`` initialisation, drawn from the trial's seed, so a gate's start does not depend
  on which other gates train beside it.
- Mini-batches (:attr:`GateTraining.batch_size`): an epoch is one pass over the training rows
  in an order shuffled afresh every epoch from the trial's seed; the last batch of an epoch is
  the remainder. ``batch_size=None`` is one full-batch step per epoch.
- A batch runs on its distinct feature rows, each weighted by the labels of the rows it stands
  for: the same loss and gradient as row by row, far cheaper, since the features are counts
  (Beauty: ~200 distinct rows for ~11k sequences, ~40 in a batch of 256).
- After every epoch the same loss on the held-out rows; the gate keeps the weights of the epoch
  where it was lowest (the earliest on ties), or with ``keep="last"`` those of the last epoch.
- Departure (the paper is silent): features are standardised with the training rows' mean and
  standard deviation (a constant feature keeps scale 1); both are stored with the gate.

:func:`train_gates` trains T gates at once: parameters carry a leading trial axis and every
product is a batched matmul over ``(T, rows, H)``. Trials are grouped by hidden size, so there
is no padding; within a group they are sorted by epoch count, and epoch ``e`` trains only the
prefix of trials with at least ``e`` epochs (a slice, not a mask), all at the same Adam step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from hybridrec.cpu import limit_threads

_BETAS = (0.9, 0.999)
_EPS = 1e-8
_SHUFFLE_STREAM = 2  # a trial's batch order: numpy.random.default_rng([seed, this])
KEEP = ("best", "last")


class GateModel(Protocol):
    """Any gate: this MLP or a tree gate (:mod:`hybridrec.hybrid.tree_gate`)."""

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    @property
    def n_branches(self) -> int: ...

    def branch_weights(self, features: np.ndarray) -> np.ndarray:
        """Per-row branch weights ``(n, B)`` from raw features ``(n, F)``; column 0: alpha."""
        ...


@dataclass(frozen=True)
class GateHyperparameters:
    """What the random search varies for the gate (the fusion noise is not the gate's)."""

    lr: float
    hidden: int
    epochs: int
    pos_weight: float


@dataclass(frozen=True)
class GateTraining:
    """How every gate of a search trains (not searched)."""

    batch_size: int | None = 256  # None: one full-batch step per epoch
    keep: str = "best"  # the epoch whose weights are kept: "best" held-out loss, or "last"
    focal_gamma: float = 0.0  # 0: (weighted) BCE / cross-entropy


PAPER_TRAINING = GateTraining()
"""Mini-batches of 256, the best epoch kept, BCE: the default of every search."""


@dataclass(frozen=True)
class Gate:
    """A trained gate with its feature standardisation; predicts in NumPy float64."""

    feature_names: tuple[str, ...]
    n_branches: int
    mean: np.ndarray  # (F,)
    scale: np.ndarray  # (F,)
    layers: tuple[np.ndarray, ...]  # w1 (F, H), b1 (H,), w2 (H, H), b2 (H,), w3 (H, O), b3 (O,)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Raw outputs ``(n, O)`` for raw (unstandardised) features ``(n, F)``."""
        w1, b1, w2, b2, w3, b3 = self.layers
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        h = np.maximum(x @ w1 + b1, 0.0)
        h = np.maximum(h @ w2 + b2, 0.0)
        return h @ w3 + b3

    def branch_weights(self, features: np.ndarray) -> np.ndarray:
        """Per-row branch weights ``(n, B)`` summing to 1; column 0 is the paper's alpha."""
        z = self.logits(features)
        if self.n_branches == 2:
            alpha = 0.5 * (1.0 + np.tanh(0.5 * z[:, 0]))  # sigmoid, without overflow
            return np.stack([alpha, 1.0 - alpha], axis=1)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class TrainedGate:
    """A gate and the epoch whose weights it kept (1-based)."""

    gate: Gate
    epoch: int


def n_outputs(n_branches: int) -> int:
    """One logit (alpha) for two branches, one per branch otherwise."""
    if n_branches < 2:
        raise ValueError(f"a gate needs at least two branches, got {n_branches}")
    return 1 if n_branches == 2 else n_branches


def initial_parameters(n_features: int, hidden: int, n_out: int,
                       seed: int) -> list[np.ndarray]:
    """``nn.Linear``'s default start, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and
    biases, drawn from ``seed`` in the order w1, b1, w2, b2, w3, b3; weights are (in, out)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [((n_features, hidden), n_features), ((hidden,), n_features),
              ((hidden, hidden), hidden), ((hidden,), hidden),
              ((hidden, n_out), hidden), ((n_out,), hidden)]
    out = []
    for shape, fan_in in shapes:
        bound = 1.0 / np.sqrt(fan_in)
        draw = torch.rand(shape, generator=generator, dtype=torch.float64)
        out.append((draw * 2.0 - 1.0).numpy() * bound)
    return out


def epoch_orders(seed: int, n_rows: int) -> Iterator[np.ndarray]:
    """The order of the training rows in each epoch of the trial seeded ``seed``, (n,) each."""
    rng = np.random.default_rng([seed, _SHUFFLE_STREAM])
    while True:
        yield rng.permutation(n_rows)


def fit_standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and standard deviation (1 where a column is constant)."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0)


def one_hot(best_branch: np.ndarray, n_branches: int) -> np.ndarray:
    """Hard labels (n, B) from each row's class."""
    return np.eye(n_branches)[best_branch]


def train_gates(features: np.ndarray, labels: np.ndarray,
                hyperparameters: Sequence[GateHyperparameters], seeds: Sequence[int],
                feature_names: Sequence[str], held_out: tuple[np.ndarray, np.ndarray] | None = None,
                training: GateTraining = PAPER_TRAINING, dtype: torch.dtype = torch.float32,
                threads: int = 1) -> list[TrainedGate]:
    """Train one gate per ``(hyperparameters[i], seeds[i])`` on the same rows, all at once.

    ``features`` (n, F) are raw; ``labels`` (n, B) each row's soft label. ``held_out``: the
    held-out rows' raw features and labels, whose loss picks the kept epoch (needed unless
    ``training.keep == "last"``). Returns the gates in input order. Runs on ``threads`` threads
    (see :func:`hybridrec.cpu.limit_threads`).
    """
    if len(hyperparameters) != len(seeds):
        raise ValueError("one seed per hyperparameter set")
    if training.keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP}, got {training.keep!r}")
    if held_out is None and training.keep == "best":
        raise ValueError("keeping the best epoch needs held-out rows")
    with limit_threads(threads):
        return _train_gates(np.asarray(features, dtype=np.float64), labels, held_out,
                            hyperparameters, seeds, tuple(feature_names), training, dtype)


@dataclass(frozen=True)
class _Rows:
    """Standardised rows and their loss weights: the labels they stand for over the row count
    of the (mini-)batch, so that a sum over them is the batch's mean loss."""

    x: torch.Tensor  # (m, F), or (T, m, F): each trial its own rows
    targets: torch.Tensor  # (m, B), or (T, m, B)


@dataclass(frozen=True)
class _TrainingRows:
    """The training rows as their distinct feature rows and, per row, which one it is."""

    distinct: torch.Tensor  # (m, F) standardised
    row: np.ndarray  # (n,) each training row's distinct row
    labels: np.ndarray  # (n, B)
    full_batch: _Rows  # every row at once


def _train_gates(features: np.ndarray, labels: np.ndarray,
                 held_out: tuple[np.ndarray, np.ndarray] | None,
                 hyperparameters: Sequence[GateHyperparameters], seeds: Sequence[int],
                 feature_names: tuple[str, ...], training: GateTraining,
                 dtype: torch.dtype) -> list[TrainedGate]:
    mean, scale = fit_standardisation(features)
    n_branches = labels.shape[1]
    distinct, row = _distinct_rows((features - mean) / scale)
    train = _TrainingRows(torch.as_tensor(distinct, dtype=dtype), row, labels,
                          _full_batch(distinct, row, labels, dtype))
    valid = None
    if held_out is not None and training.keep == "best":
        valid = _full_batch(*_distinct_rows((np.asarray(held_out[0], dtype=np.float64) - mean)
                                            / scale), held_out[1], dtype)

    gates: list[TrainedGate | None] = [None] * len(hyperparameters)
    for hidden in sorted({h.hidden for h in hyperparameters}):
        members = [i for i, h in enumerate(hyperparameters) if h.hidden == hidden]
        members.sort(key=lambda i: -hyperparameters[i].epochs)  # stable: longest first
        trained, epochs = _train_group(train, valid, n_branches,
                                       [hyperparameters[i] for i in members],
                                       [seeds[i] for i in members], training)
        for slot, i in enumerate(members):
            layers = tuple(p[slot].to(torch.float64).numpy().copy() for p in trained)
            gates[i] = TrainedGate(Gate(feature_names, n_branches, mean, scale, layers),
                                   int(epochs[slot]))
    return [g for g in gates if g is not None]


def _distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows (m, F) of ``x`` and, for each row of ``x``, its distinct row (n,)."""
    rows, inverse = np.unique(x, axis=0, return_inverse=True)
    return rows, inverse.reshape(-1)


def _label_sums(index: np.ndarray, labels: np.ndarray, size: int) -> np.ndarray:
    """(size, B): at each position in ``[0, size)``, the sum of the labels (n, B) of the rows
    whose ``index`` (n,) is that position."""
    return np.stack([np.bincount(index, weights=labels[:, b], minlength=size)
                     for b in range(labels.shape[1])], axis=1)


def _full_batch(distinct: np.ndarray, row: np.ndarray, labels: np.ndarray,
                dtype: torch.dtype) -> _Rows:
    """All rows as their distinct rows: a loss over them is the mean loss over every row."""
    sums = _label_sums(row, labels, len(distinct))
    return _Rows(torch.as_tensor(distinct, dtype=dtype),
                 torch.as_tensor(sums / len(row), dtype=dtype))


def _batches(train: _TrainingRows, orders: Sequence[Iterator[np.ndarray]],
             batch_size: int | None) -> Iterator[_Rows]:
    """One epoch's batches for the active trials (A of them).

    Full batch: every row, shared by all trials. Mini-batches: each trial's next
    ``batch_size`` rows in its own order, as the distinct rows among them (A, d, F) with their
    summed labels over the batch's row count (A, d, B); d is the most any trial's batch holds,
    and a trial with fewer is padded with weight 0.
    """
    if batch_size is None:
        yield train.full_batch
        return
    order = np.stack([next(o) for o in orders])  # (A, n): this epoch's order per trial
    n_trials, n_distinct = len(order), len(train.distinct)
    for start in range(0, order.shape[1], batch_size):
        batch = order[:, start:start + batch_size]  # (A, b) training rows
        key = (np.arange(n_trials)[:, None] * n_distinct + train.row[batch]).reshape(-1)
        sums = _label_sums(key, train.labels[batch.reshape(-1)], n_trials * n_distinct)
        sums = sums.reshape(n_trials, n_distinct, -1) / batch.shape[1]  # (A, m, B)
        present = sums.sum(axis=2) > 0  # (A, m): every row's labels sum to 1
        trial, distinct = np.nonzero(present)
        slot = (np.cumsum(present, axis=1) - 1)[trial, distinct]
        width = int(present.sum(axis=1).max())
        index = np.zeros((n_trials, width), dtype=np.int64)  # padding: row 0, weight 0
        targets = np.zeros((n_trials, width, sums.shape[2]))
        index[trial, slot] = distinct
        targets[trial, slot] = sums[trial, distinct]
        yield _Rows(train.distinct[torch.as_tensor(index)],
                    torch.as_tensor(targets, dtype=train.distinct.dtype))


def _train_group(train: _TrainingRows, valid: _Rows | None, n_branches: int,
                 hyperparameters: Sequence[GateHyperparameters], seeds: Sequence[int],
                 training: GateTraining) -> tuple[list[torch.Tensor], np.ndarray]:
    """Adam for T gates of one hidden size, sorted by epochs (descending); the kept layers and
    the kept epoch of each.

    All of a trial's parameters live in one row of a (T, P) buffer, so one Adam update covers
    every layer; the layers are views into it.
    """
    n_trials, hidden = len(hyperparameters), hyperparameters[0].hidden
    n_features = train.distinct.shape[1]
    starts = [initial_parameters(n_features, hidden, n_outputs(n_branches), s) for s in seeds]
    shapes = [p.shape for p in starts[0]]
    dtype = train.distinct.dtype
    flat = torch.as_tensor(np.stack([np.concatenate([p.ravel() for p in trial])
                                     for trial in starts]), dtype=dtype)  # (T, P)
    lr = torch.tensor([h.lr for h in hyperparameters], dtype=dtype)[:, None]
    class_weight = torch.ones(n_trials, n_branches, dtype=dtype)  # (T, B): pos_weight on 0
    class_weight[:, 0] = torch.tensor([h.pos_weight for h in hyperparameters], dtype=dtype)
    epochs = np.array([h.epochs for h in hyperparameters])
    orders = [epoch_orders(s, len(train.row)) for s in seeds]
    first_moment, second_moment = torch.zeros_like(flat), torch.zeros_like(flat)
    kept, kept_loss = flat.clone(), torch.full((n_trials,), torch.inf, dtype=dtype)
    kept_epoch = np.zeros_like(epochs) if valid is not None else epochs.copy()  # 0: the start
    beta1, beta2 = _BETAS
    gamma = training.focal_gamma

    step = 0
    for epoch in range(1, int(epochs.max(initial=0)) + 1):
        active = int((epochs >= epoch).sum())  # trials are sorted, so the active ones lead
        for batch in _batches(train, orders[:active], training.batch_size):
            step += 1
            leaf = flat[:active].detach().requires_grad_(True)
            loss = _loss(batch, _layers(leaf, shapes), class_weight[:active], gamma).sum()
            (grad,) = torch.autograd.grad(loss, leaf)
            with torch.no_grad():  # torch.optim.Adam's update, one learning rate per trial
                m, v = first_moment[:active], second_moment[:active]
                m.lerp_(grad, 1.0 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = (v.sqrt() / (1.0 - beta2 ** step) ** 0.5).add_(_EPS)
                flat[:active].sub_(lr[:active] / (1.0 - beta1 ** step) * m / denom)
        if valid is not None:  # the held-out loss after this epoch; keep the lowest
            with torch.no_grad():
                held = _loss(valid, _layers(flat[:active], shapes), class_weight[:active], gamma)
            better = torch.nonzero(held < kept_loss[:active]).reshape(-1)
            kept[better], kept_loss[better] = flat[better], held[better]
            kept_epoch[better.numpy()] = epoch
    return _layers(kept if valid is not None else flat, shapes), kept_epoch


def _layers(flat: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """Views (T, *shape) of the layers stored side by side in ``flat`` (T, P)."""
    out, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[:, offset:offset + size].reshape(flat.shape[0], *shape))
        offset += size
    return out


def _forward(x: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Logits (T, m, O) of T gates on shared rows x (m, F) or on their own rows (T, m, F)."""
    w1, b1, w2, b2, w3, b3 = params  # weights (T, in, out), biases (T, out)
    h = torch.relu(torch.matmul(x, w1) + b1[:, None])  # (T, m, H)
    h = torch.relu(torch.baddbmm(b2[:, None], h, w2))  # (T, m, H)
    return torch.baddbmm(b3[:, None], h, w3)  # (T, m, O)


def _loss(rows: _Rows, params: Sequence[torch.Tensor], class_weight: torch.Tensor,
          gamma: float) -> torch.Tensor:
    """Per-trial loss (T,): the targets already carry 1 / rows, so the sum is the mean."""
    z = _forward(rows.x, params)
    if z.shape[-1] == 1:  # alpha = sigmoid(z): log p(branch 0), log p(branch 1)
        log_p = torch.cat([-F.softplus(-z), -F.softplus(z)], dim=-1)
    else:
        log_p = torch.log_softmax(z, dim=-1)  # (T, m, B)
    weighted = log_p * rows.targets * class_weight[:, None, :]
    if gamma:  # focal term (1 - p_b)^gamma, with log(1 - p_b) = logsumexp of the other branches
        masked = log_p[..., None, :] + _off_diagonal(log_p.shape[-1], log_p.dtype)  # (T, m, B, B)
        weighted = weighted * torch.exp(gamma * torch.logsumexp(masked, dim=-1))
    return -weighted.sum(dim=(1, 2))


def _off_diagonal(n: int, dtype: torch.dtype) -> torch.Tensor:
    """(n, n): 0 off the diagonal, -inf on it; row b masks branch b out of a logsumexp."""
    return torch.zeros(n, n, dtype=dtype).fill_diagonal_(-torch.inf)
