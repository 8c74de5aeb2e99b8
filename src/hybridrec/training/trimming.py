"""Hidden states at a batch's targets, computed on windows with the leading padding trimmed.

The prefix objective feeds windows of ``N`` items that are mostly left padding (Beauty: 8.4 real
items of 50 on average). For a model whose outputs at real positions do not depend on leading
padding (``SequentialRecommender.ignores_leading_padding``), the batch is split into groups of
rows by the width their real items need, and each group runs on its last ``width`` columns only
(``SequenceEmbedding`` right-aligns positions, so a trimmed window is the same sequence). The
batch, its order and the per-sample losses are unchanged; only the summation order inside
kernels and the dropout random stream (one draw per group) differ from the untrimmed pass.

Groups are chosen per batch by an exact dynamic programme over the sorted distinct widths,
minimising ``sum(rows * width) + GROUP_COST * groups``: the padded positions still computed plus
a fixed price per group for its extra kernel calls and smaller matrices. Grouping depends on the
batch's ids only, never on timing or the thread count, so training stays deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hybridrec.training.batches import Batch

# Price of one more group, in window positions (rows x columns) of the batch: the A/B of
# benchmarks/training_throughput.py --group-cost at LinRec's official Beauty settings gave
# trimmed/full speed-ups of 2.9x (0), 3.25x (128), 3.3-3.4x (512), 3.0-3.1x (2048), 2.8x (8192).
GROUP_COST = 512


@dataclass(frozen=True)
class LengthGroup:
    """Batch ``rows`` whose real items all fit in the last ``width`` columns of the window."""

    rows: Tensor  # (b,) int64
    width: int


def needed_widths(inputs: Tensor) -> Tensor:
    """(B, N) left-padded ids -> (B,) columns from the first real item to the end (N if none)."""
    n = inputs.shape[1]
    real = (inputs != 0).to(torch.int8)  # (B, N)
    first = real.argmax(dim=1)  # (B,) first real column; 0 for an all-padding row
    return n - first


def length_groups(inputs: Tensor, group_cost: int | None = None) -> list[LengthGroup]:
    """Split the rows of a left-padded batch into groups of trimmed width, cheapest first.

    Rows are ordered by needed width (stable sort); a group is a run of consecutive distinct
    widths computed at the largest of them. Returns groups in increasing width.
    ``group_cost`` defaults to the module's ``GROUP_COST`` (read at call time).
    """
    group_cost = GROUP_COST if group_cost is None else group_cost
    widths = needed_widths(inputs)  # (B,)
    order = torch.sort(widths, stable=True).indices  # (B,)
    distinct, counts = torch.unique(widths, return_counts=True)  # ascending
    w, c = distinct.tolist(), counts.tolist()
    k = len(w)
    before = [0] * (k + 1)  # rows with a width among the first i distinct ones
    for i, count in enumerate(c):
        before[i + 1] = before[i] + count
    best = [0.0] + [float("inf")] * k  # best[j]: cost of grouping the first j distinct widths
    cut = [0] * (k + 1)
    for j in range(1, k + 1):
        for i in range(j):
            cost = best[i] + (before[j] - before[i]) * w[j - 1] + group_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bounds = []
    j = k
    while j > 0:
        bounds.append((cut[j], j))
        j = cut[j]
    return [LengthGroup(order[before[i]:before[j]], w[j - 1]) for i, j in reversed(bounds)]


def states_at_targets(model: nn.Module, batch: Batch, trim_padding: bool = True
                      ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Hidden states that predict the batch's targets: ``(h (M, d), targets (M,), negatives)``.

    ``prefix`` batches (targets (B,)): the last position of every row, in batch order (M = B).
    ``causal`` batches (targets (B, N)): every position with a target (M = their count), grouped
    by length group when trimmed. ``negatives`` follows ``targets`` (``None`` without).
    Trims only when ``trim_padding`` and the model declares ``ignores_leading_padding``
    (``SequentialRecommender``'s property; a module without it is never trimmed).
    """
    inputs, targets, negatives = batch.inputs, batch.targets, batch.negatives
    n = inputs.shape[1]
    trim = trim_padding and bool(getattr(model, "ignores_leading_padding", False))
    groups = length_groups(inputs) if trim else []
    if not groups or (len(groups) == 1 and groups[0].width == n):
        hidden = model(inputs)  # (B, N, d)
        if targets.dim() == 1:
            return hidden[:, -1], targets, negatives  # (B, d), (B,), (B,) | None
        valid = targets != 0  # (B, N)
        return hidden[valid], targets[valid], None if negatives is None else negatives[valid]
    if targets.dim() == 1:
        last = [model(inputs[g.rows, n - g.width:])[:, -1] for g in groups]  # (b_g, d) each
        rows = torch.cat([g.rows for g in groups])  # (B,) batch row of each stacked state
        back = torch.empty_like(rows)
        back[rows] = torch.arange(rows.numel(), device=rows.device)  # inverse permutation
        return torch.cat(last)[back], targets, negatives  # (B, d) in batch order
    states, kept_targets, kept_negatives = [], [], []
    for g in groups:
        columns = slice(n - g.width, n)  # the trimmed columns hold no target (padded inputs)
        group_targets = targets[g.rows, columns]  # (b_g, w)
        valid = group_targets != 0  # (b_g, w)
        states.append(model(inputs[g.rows, columns])[valid])  # (m_g, d)
        kept_targets.append(group_targets[valid])
        if negatives is not None:
            kept_negatives.append(negatives[g.rows, columns][valid])
    return (torch.cat(states), torch.cat(kept_targets),
            torch.cat(kept_negatives) if negatives is not None else None)
