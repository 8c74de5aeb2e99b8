"""Evaluate a trained model on a dataset folder under every protocol, with one code path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hybridrec.data.store import (
    SplitArrays,
    candidate_files,
    dataset_files,
    read_negatives,
    read_split,
)
from hybridrec.evaluation.metrics import metrics_from_ranks
from hybridrec.evaluation.ranking import RankResult, fewest_rankable_items, rank_full, rank_sampled
from hybridrec.models.base import SequentialRecommender
from hybridrec.training.trimming import needed_widths


@dataclass(frozen=True)
class EvalSplit:
    """Model inputs, full histories and sampled negatives of one split, loaded once."""

    split: SplitArrays
    inputs: torch.Tensor  # (U, N) model windows, left-padded
    history: torch.Tensor  # (U, L) the whole input sequence, for excluding seen items
    negatives: dict[str, torch.Tensor]  # protocol -> (U, M)

    @property
    def targets(self) -> np.ndarray:
        assert self.split.targets is not None
        return self.split.targets


def load_eval_split(root: str | Path, split: str, max_len: int,
                    protocols: Iterable[str]) -> EvalSplit:
    """Read split/{split}.parquet and the candidate files the protocols need."""
    files = dataset_files(root)
    arrays = read_split(files[split])
    longest = int(np.diff(arrays.offsets).max())
    negatives = {p: torch.from_numpy(read_negatives(candidate_files(root, p)[split]))
                 for p in protocols if p != "full"}
    return EvalSplit(arrays, torch.from_numpy(arrays.padded(max_len)),
                     torch.from_numpy(arrays.padded(longest)), negatives)


def last_hidden_states(model: SequentialRecommender, inputs: torch.Tensor, batch_size: int
                       ) -> torch.Tensor:
    """(U, N) left-padded windows -> (U, d): the hidden state at every user's last position.

    Users are taken in batches of ``batch_size``. For a model whose outputs ignore leading
    padding (``ignores_leading_padding``), users are batched in order of the width their real
    items need and each batch runs on its trimmed window (its widest user's columns only): the
    same states up to summation order, at a fraction of the cost where windows are mostly
    padding. Model in eval mode, no gradients; the states stay on the model's device.
    """
    device = next(model.parameters()).device
    n = inputs.shape[1]
    trim = model.ignores_leading_padding
    widths = needed_widths(inputs) if trim else torch.full((inputs.shape[0],), n)
    order = torch.sort(widths, stable=True).indices  # (U,) narrowest first
    hidden = torch.empty(inputs.shape[0], model.hidden_size, device=device)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]  # (b,)
            width = int(widths[rows].max())
            hidden[rows.to(device)] = model.last_hidden(inputs[rows, n - width:].to(device))
    return hidden


def rank_split(model: SequentialRecommender, data: EvalSplit, protocol: str, k: int,
               batch_size: int, hidden: torch.Tensor | None = None) -> RankResult:
    """Rank every user's target under ``protocol`` (model in eval mode, no gradients).

    ``hidden`` (U, d), from :func:`last_hidden_states`, saves encoding the windows again.
    """
    was_training = model.training
    model.eval()
    try:
        if hidden is None:
            hidden = last_hidden_states(model, data.inputs, batch_size)
        states = hidden

        @torch.no_grad()
        def scores(index: torch.Tensor) -> torch.Tensor:
            return model.logits(states[index.to(states.device)])

        targets = torch.from_numpy(data.targets.astype(np.int64))
        if protocol == "full":
            return rank_full(scores, data.history, targets, model.num_items, k, batch_size)
        return rank_sampled(scores, targets, data.negatives[protocol], k, batch_size)
    finally:
        model.train(was_training)


def export_depth(data: EvalSplit, protocol: str, num_items: int, k: int) -> int:
    """The longest top-k list, at most ``k``, that every user of ``data`` has under ``protocol``.

    Sampled protocols list candidates only (target + negatives); full ranking lists the
    catalogue minus each user's history (the target always counts).
    """
    if protocol != "full":
        return min(k, data.negatives[protocol].shape[1] + 1)
    targets = torch.from_numpy(data.targets.astype(np.int64))
    return min(k, fewest_rankable_items(data.history, targets, num_items))


def evaluate_protocols(model: SequentialRecommender, data: EvalSplit, protocols: Iterable[str],
                       k: int | Mapping[str, int], batch_size: int
                       ) -> tuple[dict[str, dict[str, float]], dict[str, RankResult]]:
    """Metrics and rank results (top-``k`` lists; ``k`` may differ per protocol) for every
    protocol on one split; the windows are encoded once for all of them."""
    was_training = model.training
    model.eval()
    hidden = last_hidden_states(model, data.inputs, batch_size)
    model.train(was_training)
    metrics, results = {}, {}
    for protocol in protocols:
        depth = k[protocol] if isinstance(k, Mapping) else k
        results[protocol] = rank_split(model, data, protocol, depth, batch_size, hidden)
        metrics[protocol] = metrics_from_ranks(results[protocol].target_rank)
    return metrics, results
