"""The gate: sequence features -> one weight per branch; many gates trained in one pass.

Architecture (paper Section III-C, Fig. 5): ``Linear(F, H) -> ReLU -> Linear(H, H) -> ReLU ->
Linear(H, O)``. With two branches ``O = 1`` and ``alpha = sigmoid(logit)`` is branch 0's
(LinRec's) weight, trained with ``BCEWithLogits(pos_weight)`` on the label
``best_branch == 0``. With ``B > 2`` branches ``O = B``, the weights are ``softmax(logits)`` and
the loss is cross-entropy on ``best_branch`` with class weight ``pos_weight`` on branch 0 and 1
on the others (for ``B = 2`` this is the same loss). Both losses are averaged over rows, as
``BCEWithLogitsLoss`` does.

Training choices the paper leaves open, and ours:

- ReLU as the nonlinearity; PyTorch's default ``nn.Linear`` initialisation, drawn per trial from
  that trial's seed, so a gate's start does not depend on which other gates train beside it.
- Full-batch Adam (PyTorch defaults, betas 0.9/0.999, eps 1e-8): one epoch is one step over all
  training rows. The features are counts and functions of counts, so the rows repeat a lot;
  training runs on the distinct rows with their per-branch counts as weights, which is the same
  full-batch loss and gradient, far cheaper (Beauty: ~200 distinct rows for ~11k sequences).
- Features are standardised with the training rows' mean and standard deviation (a constant
  feature keeps scale 1); both are stored with the gate.

:func:`train_gates` trains T gates at once: parameters carry a leading trial axis and every
product is a batched matmul over ``(T, rows, H)``. Trials are grouped by hidden size, so there
is no padding; within a group they are sorted by epoch count and step ``s`` updates only the
prefix of trials with more than ``s`` epochs (a slice, not a mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hybridrec.cpu import limit_threads

_BETAS = (0.9, 0.999)
_EPS = 1e-8


@dataclass(frozen=True)
class GateHyperparameters:
    """What the random search varies for the gate (the fusion noise is not the gate's)."""

    lr: float
    hidden: int
    epochs: int
    pos_weight: float


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


def fit_standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and standard deviation (1 where a column is constant)."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0)


def train_gates(features: np.ndarray, best_branch: np.ndarray, n_branches: int,
                hyperparameters: Sequence[GateHyperparameters], seeds: Sequence[int],
                feature_names: Sequence[str], dtype: torch.dtype = torch.float32,
                threads: int = 1) -> list[Gate]:
    """Train one gate per ``(hyperparameters[i], seeds[i])`` on the same rows, all at once.

    ``features`` (n, F) are raw; ``best_branch`` (n,) holds each row's class (see
    :func:`hybridrec.hybrid.features.best_branch`). Returns the gates in input order. Runs on
    ``threads`` threads (see :func:`hybridrec.cpu.limit_threads`).
    """
    if len(hyperparameters) != len(seeds):
        raise ValueError("one seed per hyperparameter set")
    with limit_threads(threads):
        return _train_gates(np.asarray(features, dtype=np.float64), best_branch, n_branches,
                            hyperparameters, seeds, tuple(feature_names), dtype)


def _train_gates(features: np.ndarray, best_branch: np.ndarray, n_branches: int,
                 hyperparameters: Sequence[GateHyperparameters], seeds: Sequence[int],
                 feature_names: tuple[str, ...], dtype: torch.dtype) -> list[Gate]:
    mean, scale = fit_standardisation(features)
    rows, class_counts = _distinct_rows((features - mean) / scale, best_branch, n_branches)
    x = torch.as_tensor(rows, dtype=dtype)
    counts = torch.as_tensor(class_counts / len(features), dtype=dtype)  # (m, B), sums to 1

    gates: list[Gate | None] = [None] * len(hyperparameters)
    hidden_sizes = sorted({h.hidden for h in hyperparameters})
    for hidden in hidden_sizes:
        members = [i for i, h in enumerate(hyperparameters) if h.hidden == hidden]
        members.sort(key=lambda i: -hyperparameters[i].epochs)  # stable: longest first
        trained = _train_group(x, counts, n_branches, [hyperparameters[i] for i in members],
                               [seeds[i] for i in members])
        for slot, i in enumerate(members):
            layers = tuple(p[slot].to(torch.float64).numpy().copy() for p in trained)
            gates[i] = Gate(feature_names, n_branches, mean, scale, layers)
    return [g for g in gates if g is not None]


def _distinct_rows(x: np.ndarray, best_branch: np.ndarray,
                   n_branches: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct feature rows (m, F) and how many rows of each class each one stands for."""
    rows, inverse = np.unique(x, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse * n_branches + best_branch,
                         minlength=len(rows) * n_branches).reshape(len(rows), n_branches)
    return rows, counts.astype(np.float64)


def _train_group(x: torch.Tensor, counts: torch.Tensor, n_branches: int,
                 hyperparameters: Sequence[GateHyperparameters],
                 seeds: Sequence[int]) -> list[torch.Tensor]:
    """Full-batch Adam for T gates of one hidden size, sorted by epochs (descending).

    All of a trial's parameters live in one row of a (T, P) buffer, so one Adam update covers
    every layer; the layers are views into it.
    """
    n_trials, hidden = len(hyperparameters), hyperparameters[0].hidden
    starts = [initial_parameters(x.shape[1], hidden, n_outputs(n_branches), s) for s in seeds]
    shapes = [p.shape for p in starts[0]]
    flat = torch.as_tensor(np.stack([np.concatenate([p.ravel() for p in trial])
                                     for trial in starts]), dtype=x.dtype)  # (T, P)
    lr = torch.tensor([h.lr for h in hyperparameters], dtype=x.dtype)[:, None]
    class_weight = torch.ones(n_trials, n_branches, dtype=x.dtype)  # (T, B): pos_weight on 0
    class_weight[:, 0] = torch.tensor([h.pos_weight for h in hyperparameters], dtype=x.dtype)
    epochs = np.array([h.epochs for h in hyperparameters])
    first_moment, second_moment = torch.zeros_like(flat), torch.zeros_like(flat)
    beta1, beta2 = _BETAS

    for step in range(1, int(epochs.max(initial=0)) + 1):
        active = int((epochs >= step).sum())  # trials are sorted, so the active ones lead
        leaf = flat[:active].detach().requires_grad_(True)
        loss = _loss(x, counts, _layers(leaf, shapes), class_weight[:active]).sum()
        (grad,) = torch.autograd.grad(loss, leaf)
        with torch.no_grad():  # torch.optim.Adam's update, one learning rate per trial
            m, v = first_moment[:active], second_moment[:active]
            m.lerp_(grad, 1.0 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            denom = (v.sqrt() / (1.0 - beta2 ** step) ** 0.5).add_(_EPS)
            flat[:active].sub_(lr[:active] / (1.0 - beta1 ** step) * m / denom)
    return _layers(flat, shapes)


def _layers(flat: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """Views (T, *shape) of the layers stored side by side in ``flat`` (T, P)."""
    out, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[:, offset:offset + size].reshape(flat.shape[0], *shape))
        offset += size
    return out


def _forward(x: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Logits (T, m, O) of T gates on shared rows x (m, F)."""
    w1, b1, w2, b2, w3, b3 = params  # weights (T, in, out), biases (T, out)
    h = torch.relu(torch.matmul(x, w1) + b1[:, None])  # (T, m, H)
    h = torch.relu(torch.baddbmm(b2[:, None], h, w2))  # (T, m, H)
    return torch.baddbmm(b3[:, None], h, w3)  # (T, m, O)


def _loss(x: torch.Tensor, counts: torch.Tensor, params: Sequence[torch.Tensor],
          class_weight: torch.Tensor) -> torch.Tensor:
    """Per-trial weighted log loss (T,), i.e. the mean over the original rows."""
    z = _forward(x, params)
    if z.shape[-1] == 1:  # alpha = sigmoid(z): log p(branch 0), log p(branch 1)
        log_p = torch.cat([-F.softplus(-z), -F.softplus(z)], dim=-1)
    else:
        log_p = torch.log_softmax(z, dim=-1)
    return -(log_p * counts * class_weight[:, None, :]).sum(dim=(1, 2))
