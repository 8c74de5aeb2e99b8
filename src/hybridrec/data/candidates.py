"""Sampled evaluation candidates, drawn once per dataset and split so every model shares them.

``uniform99``: 99 negatives drawn uniformly from the items the user never interacted with
(FMLP-Rec's protocol). ``pop100``: 100 negatives drawn by item popularity (LinRec/RecBole's).
Both sample without replacement, in proportion to the weights (successive sampling).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from hybridrec.data.preprocess import Interactions
from hybridrec.errors import ConfigError, HybridrecError
from hybridrec.protocols import PAPER, PAPER_PROTOCOLS, Protocol


def protocol_rng(seed: int, split: str, protocol: str) -> np.random.Generator:
    """Independent, reproducible stream per (seed, split, protocol)."""
    return np.random.default_rng([seed, zlib.crc32(f"{split}/{protocol}".encode())])


def protocol_keys(config: Mapping[str, Any], protocol: str) -> list[str]:
    """The config keys that ask for ``protocol``'s candidates, where a user would remove it.

    The workflow draws candidates for every protocol training selects under or a metrics file
    reports (``evaluation.protocol``, ``evaluation.protocols``, which ``ablations.protocols``
    are among) and every protocol a hybrid run reads exports of (``hybrid.protocols``, a
    ``paper`` entry asking for each branch's paper protocol).
    """
    evaluation, hybrid = config["evaluation"], config["hybrid"]
    keys = ["evaluation.protocol"] if evaluation["protocol"] == protocol else []
    lists = [("evaluation.protocols", evaluation["protocols"]),
             ("ablations.protocols", (config.get("ablations") or {}).get("protocols", [])),
             ("hybrid.protocols", hybrid["protocols"])]
    keys += [f"{key}[{i}]" for key, entries in lists for i, entry in enumerate(entries)
             if entry == protocol]
    ranked = ", ".join(b for b in hybrid["branches"] if PAPER_PROTOCOLS.get(b) == protocol)
    keys += [f"hybrid.protocols[{i}] ({PAPER!r}: {ranked} under {protocol})"
             for i, entry in enumerate(hybrid["protocols"]) if entry == PAPER and ranked]
    return keys


def check_negative_supply(data: Interactions, protocol: Protocol, dataset: str,
                          asked_by: Sequence[str] = ()) -> None:
    """Raise ConfigError if a user has fewer unseen items than the protocol's negatives.

    The message names the dataset, the protocol, how many users fall short (and the first few by
    original id) and the config keys ``asked_by`` that ask for the protocol (see
    :func:`protocol_keys`; where the caller cannot say, the keys that may).
    """
    n_items = len(data.item_ids)
    pairs = np.unique(data.users.astype(np.int64) * (n_items + 1) + data.items)
    distinct = np.bincount(pairs // (n_items + 1), minlength=len(data.user_ids) + 1)[1:]
    short = np.flatnonzero(n_items - distinct < protocol.negatives)
    if not short.size:
        return
    examples = ", ".join(map(repr, data.user_ids["original_id"].iloc[short[:5]].tolist()))
    keys = (" and ".join(asked_by) if asked_by else
            "evaluation.protocols, evaluation.protocol and hybrid.protocols, where it is asked for")
    raise ConfigError(
        f"datasets.{dataset}: protocol {protocol.name} draws {protocol.negatives} negatives per "
        f"user from the items the user never touched, but {short.size} of {len(distinct)} users "
        f"have fewer (the catalogue holds {n_items} items), e.g. user(s) {examples} (original "
        f"ids); remove {protocol.name!r} from {keys} (`full` ranks against the whole "
        "catalogue), or use a larger catalogue")


def sample_negatives(data: Interactions, protocol: Protocol, rng: np.random.Generator,
                     oversample: float = 2.0, block_cells: int = 1 << 22) -> np.ndarray:
    """(U, protocol.negatives) int32 negatives per user, sorted by id, none in the user's sequence.

    Popularity is the item's interaction count over the whole dataset. Draws with replacement
    and keeps each user's first k distinct items outside their sequence, which is exactly
    successive sampling without replacement; users left short after that (a history covering
    most of the catalogue) are sampled exactly by Gumbel-top-k over their remaining items.
    The draws are made in blocks of users of about ``block_cells`` draws each (memory does not
    grow with the users); the blocks read the generator's stream in the order one block would.
    """
    n_items = len(data.item_ids)
    weights = (np.bincount(data.items, minlength=n_items + 1).astype(np.float64)
               if protocol.by_popularity else np.ones(n_items + 1))
    weights[0] = 0.0  # padding id
    k = protocol.negatives
    n_users = len(data.offsets) - 1
    history = np.sort(data.users.astype(np.int64) * (n_items + 1) + data.items)

    draws = int(np.ceil(k * oversample)) + 8
    out = np.zeros((n_users, k), dtype=np.int32)
    done = np.zeros(n_users, dtype=bool)
    per_block = max(1, block_cells // draws)
    for first in range(0, n_users, per_block):
        rows = np.arange(first, min(first + per_block, n_users))
        picked = _first_distinct_valid(rng, weights, history, n_items, rows, draws, k)
        done[rows] = picked[:, k - 1] > 0
        out[rows] = np.where(done[rows, None], picked, 0)
    if (short := np.flatnonzero(~done)).size:
        out[short] = _gumbel_top_k(rng, weights, data, short, k, protocol.name)
    return np.sort(out, axis=1)


def _first_distinct_valid(rng: np.random.Generator, weights: np.ndarray, history: np.ndarray,
                          n_items: int, rows: np.ndarray, draws: int, k: int) -> np.ndarray:
    """(len(rows), k): per row the first k distinct items outside its history; 0 if fewer."""
    cdf = np.cumsum(weights / weights.sum())
    sample = np.searchsorted(cdf, rng.random((len(rows), draws)), side="right")
    sample = np.minimum(sample, n_items)
    keys = (rows[:, None] + 1) * (n_items + 1) + sample
    pos = np.clip(np.searchsorted(history, keys), 0, len(history) - 1)
    valid = history[pos] != keys
    # keep each item's first occurrence in its row (stable sort by key, compare neighbours)
    order = np.argsort(keys, axis=1, kind="stable")
    sorted_keys = np.take_along_axis(keys, order, axis=1)
    repeat = np.zeros_like(valid)
    np.put_along_axis(repeat, order[:, 1:], sorted_keys[:, 1:] == sorted_keys[:, :-1], axis=1)
    valid &= ~repeat
    rank = np.cumsum(valid, axis=1)
    take = valid & (rank <= k)
    out = np.zeros((len(rows), k), dtype=np.int32)
    row_idx, col_idx = np.nonzero(take)
    out[row_idx, rank[row_idx, col_idx] - 1] = sample[row_idx, col_idx]
    return out


def _gumbel_top_k(rng: np.random.Generator, weights: np.ndarray, data: Interactions,
                  rows: np.ndarray, k: int, name: str) -> np.ndarray:
    """Exact weighted sampling without replacement for a few users, by Gumbel-top-k."""
    with np.errstate(divide="ignore"):
        log_weight = np.log(weights)
    keys = log_weight[None, :] + rng.gumbel(size=(len(rows), len(weights)))
    offsets = data.offsets
    for i, row in enumerate(rows):
        keys[i, data.items[offsets[row]:offsets[row + 1]]] = -np.inf
    available = np.isfinite(keys).sum(axis=1)
    if (short := np.flatnonzero(available < k)).size:
        raise HybridrecError(
            f"protocol {name}: user {rows[short[0]] + 1} has only {available[short[0]]} "
            f"items to sample from, {k} negatives are needed")
    return np.argpartition(-keys, k - 1, axis=1)[:, :k]


def candidates_table(data: Interactions, targets: np.ndarray, protocol: Protocol,
                     rng: np.random.Generator) -> pa.Table:
    """Candidate file for one split: user, target and the sampled negatives (docs/contracts.md)."""
    negatives = sample_negatives(data, protocol, rng)
    n_users, k = negatives.shape
    return pa.table({
        "user": pa.array(np.arange(1, n_users + 1, dtype=np.int32)),
        "target": pa.array(targets.astype(np.int32)),
        "negatives": pa.ListArray.from_arrays(
            pa.array(np.arange(0, n_users * k + 1, k, dtype=np.int32)),
            pa.array(negatives.ravel())),
    })
