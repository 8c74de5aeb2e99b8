"""The gate's six sequence features, the per-user training label, and Table VI's categories.

Sequences come flat: ``items`` holds every user's input sequence back to back and user ``u`` owns
``items[offsets[u]:offsets[u + 1]]`` (see :func:`hybridrec.hybrid.align.align_sequences`).
Everything is computed for all users at once from ``(user, item)`` pair counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from hybridrec.hybrid.align import PAD, first_occurrence

FEATURES = ("length", "entropy", "unique_items", "max_freq_ratio", "intersection", "jaccard")
"""The paper's six features (Section III-B), in its order."""
PAPER_FEATURES = ("length", "unique_items", "entropy")
"""The three the paper's gate keeps (l.190: "we retained only these three features")."""

NEITHER = "neither"


def sequence_statistics(items: np.ndarray, offsets: np.ndarray) -> pd.DataFrame:
    """Length |S|, entropy -sum p log2 p, unique item count, and max count / |S| per sequence.

    An empty sequence gets 0 for all four.
    """
    n_users = len(offsets) - 1
    lengths = np.diff(offsets)
    row = np.repeat(np.arange(n_users), lengths)
    codes = np.unique(items, return_inverse=True)[1].reshape(-1)
    n_codes = int(codes.max(initial=-1)) + 1
    pairs, counts = np.unique(row * n_codes + codes, return_counts=True)  # distinct (user, item)
    pair_row = pairs // max(n_codes, 1)

    unique_items = np.bincount(pair_row, minlength=n_users)
    max_count = np.zeros(n_users, dtype=np.int64)
    np.maximum.at(max_count, pair_row, counts)
    p = counts / lengths[pair_row]
    entropy = -np.bincount(pair_row, weights=p * np.log2(p), minlength=n_users) + 0.0
    safe_length = np.maximum(lengths, 1)
    return pd.DataFrame({
        "length": lengths.astype(np.float64),
        "entropy": entropy,
        "unique_items": unique_items.astype(np.float64),
        "max_freq_ratio": max_count / safe_length,
    })


def list_agreement(lists: np.ndarray) -> pd.DataFrame:
    """Intersection count and Jaccard similarity of the branches' lists, ``lists`` (U, B, n).

    For two branches this is the paper's |A ∩ B| and |A ∩ B| / |A ∪ B|; for more it is the mean
    over all branch pairs (an extension: the paper has two branches). Lists are read as sets:
    padding (``PAD``) and repeats inside one list do not count. Jaccard of two empty lists is 0.
    """
    n_users, n_branches, _ = lists.shape
    valid = lists != PAD
    first = first_occurrence(lists)  # (U, B, n): first occurrence of each listed item
    sizes = first.sum(axis=-1)

    intersection = np.zeros(n_users)
    jaccard = np.zeros(n_users)
    pairs = list(combinations(range(n_branches), 2))
    for a, b in pairs:
        shared = (first[:, a, :, None] & valid[:, b, None, :]
                  & (lists[:, a, :, None] == lists[:, b, None, :])).any(axis=-1).sum(axis=-1)
        union = sizes[:, a] + sizes[:, b] - shared
        intersection += shared
        jaccard += np.divide(shared, union, out=np.zeros(n_users), where=union > 0)
    scale = 1.0 / max(len(pairs), 1)
    return pd.DataFrame({"intersection": intersection * scale, "jaccard": jaccard * scale})


def sequence_features(items: np.ndarray, offsets: np.ndarray, lists: np.ndarray,
                      top_n: int = 10) -> pd.DataFrame:
    """All six features (columns :data:`FEATURES`), one row per user in ``offsets``'s order."""
    frame = pd.concat([sequence_statistics(items, offsets),
                       list_agreement(lists[..., :top_n])], axis=1)
    return frame.loc[:, list(FEATURES)]


def best_branch(ranks: np.ndarray) -> np.ndarray:
    """Index of the branch with the best reciprocal rank per user, ties to the earliest branch.

    ``ranks`` (U, B) are 1-based, ``k + 1`` for a miss. For two branches the paper's label
    ("0 if FMLP-Rec had the better reciprocal rank, else 1") is ``best_branch == 0``: the gate's
    alpha is branch 0's (LinRec's) weight, and a tie counts for LinRec.
    """
    return np.argmin(ranks, axis=1).astype(np.int64)


TIE_LABELS = ("first", "second", "half")
"""How a tie for the best rank is labelled (``hybrid.tie_label``): for the earliest tied branch
(the literal l.334, "0 if FMLP had a better MRR score ..., otherwise 1", so a tie is LinRec's),
for the latest (for two branches: FMLP-Rec's), or shared equally (0.5 each: Section V-C's
"uncertainty" class, l.437)."""


def branch_labels(ranks: np.ndarray, tie: str = "first") -> np.ndarray:
    """The gate's soft label per user, (U, B): each branch's share, summing to 1.

    One-hot on the branch with the best reciprocal rank; a tie as ``tie`` says
    (:data:`TIE_LABELS`). For two branches column 0 is the paper's label (1: LinRec).
    """
    tied = ranks == ranks.min(axis=1, keepdims=True)  # (U, B)
    if tie == "half":
        return tied / tied.sum(axis=1, keepdims=True)
    if tie not in TIE_LABELS:
        raise ValueError(f"tie must be one of {TIE_LABELS}, got {tie!r}")
    n_branches = ranks.shape[1]
    chosen = (np.argmax(tied, axis=1) if tie == "first"
              else n_branches - 1 - np.argmax(tied[:, ::-1], axis=1))
    return np.eye(n_branches)[chosen]


def label_classes(labels: np.ndarray) -> np.ndarray:
    """A class per soft label row (U,): the branch of a one-hot row, ``B + j`` for the j-th
    distinct shared row (a tie labelled ``half``). Stratification and rebalancing count these."""
    classes = labels.argmax(axis=1).astype(np.int64)
    shared = labels.max(axis=1) < 1.0
    if shared.any():
        distinct = np.unique(labels[shared], axis=0, return_inverse=True)[1].reshape(-1)
        classes[shared] = labels.shape[1] + distinct
    return classes


def eligible(ranks: np.ndarray, top_n: int = 10) -> np.ndarray:
    """Users for whom at least one branch has the target in its top ``top_n`` (gate training)."""
    return np.asarray((ranks <= top_n).any(axis=1))


def winner_categories(ranks: np.ndarray, branches: Sequence[str], top_n: int = 10) -> pd.Series:
    """Which branches gave the target its best rank in their top ``top_n``: Table VI's category
    per user ("the number of input sequences a given model produced the best recommendations
    for", the paper's caption: by reciprocal rank, as the gate's label).

    One branch ranks it strictly best: its name; every branch ties at the best rank: ``both``
    (two branches) or ``all``; no branch has it in its top ``top_n``: ``neither``; with more than
    two branches a partial tie reads ``linrec+sasrec``.
    """
    by_code = _categories_by_code(branches)
    best = (ranks == ranks.min(axis=1, keepdims=True)) & (ranks <= top_n)
    code = best.astype(np.int64) @ (1 << np.arange(len(branches)))
    labels = np.array([by_code[c] for c in range(len(by_code))], dtype=object)[code]
    return pd.Series(pd.Categorical(labels, categories=category_names(branches)), name="category")


def category_names(branches: Sequence[str]) -> list[str]:
    """Every category in report order: single branches, then larger sets, ``neither`` last."""
    by_code = _categories_by_code(branches)
    order = sorted(range(1, len(by_code)), key=lambda c: (c.bit_count(), _bits(c)))
    return [by_code[c] for c in order] + [NEITHER]


def category_counts(categories: pd.Series) -> pd.DataFrame:
    """Table VI: users per category (zeros included), in category order."""
    counts = categories.value_counts(sort=False)
    return pd.DataFrame({"category": counts.index.astype(str), "users": counts.to_numpy()})


def _categories_by_code(branches: Sequence[str]) -> dict[int, str]:
    """Category name for each hit pattern, bit ``b`` set when branch ``b`` hits."""
    everyone = (1 << len(branches)) - 1
    names = {0: NEITHER, everyone: "both" if len(branches) == 2 else "all"}
    for code in range(1, everyone):
        names[code] = "+".join(b for i, b in enumerate(branches) if code >> i & 1)
    return names


def _bits(code: int) -> list[int]:
    return [i for i in range(code.bit_length()) if code >> i & 1]
