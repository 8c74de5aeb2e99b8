"""Sequence features, labels and Table VI categories against plain per-user Python."""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrec.hybrid.align import PAD
from hybridrec.hybrid.features import (
    FEATURES,
    best_branch,
    branch_labels,
    category_counts,
    category_names,
    eligible,
    label_classes,
    list_agreement,
    sequence_features,
    sequence_statistics,
    winner_categories,
)


def _statistics_one(sequence: list[int]) -> tuple[float, float, float, float]:
    if not sequence:
        return 0.0, 0.0, 0.0, 0.0
    counts = Counter(sequence)
    n = len(sequence)
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values())
    return float(n), entropy, float(len(counts)), max(counts.values()) / n


def _agreement_one(lists: list[list[int]]) -> tuple[float, float]:
    sets = [{i for i in row if i != PAD} for row in lists]
    pairs = list(combinations(sets, 2))
    inter = [len(a & b) for a, b in pairs]
    jacc = [len(a & b) / len(a | b) if a | b else 0.0 for a, b in pairs]
    return sum(inter) / len(pairs), sum(jacc) / len(pairs)


def _flat(sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in sequences])
    items = np.array([i for s in sequences for i in s], dtype=np.int64)
    return items, offsets


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(-3, 12), max_size=15), min_size=1, max_size=20))
def test_sequence_statistics_match_plain_python(sequences: list[list[int]]) -> None:
    frame = sequence_statistics(*_flat(sequences))
    expected = np.array([_statistics_one(s) for s in sequences])
    np.testing.assert_allclose(frame.to_numpy(), expected, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 3), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_list_agreement_matches_plain_python(n_branches: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lists = rng.integers(0, 8, size=(12, n_branches, k))
    lists[rng.random(lists.shape) < 0.2] = PAD
    frame = list_agreement(lists)
    expected = np.array([_agreement_one(row.tolist()) for row in lists])
    np.testing.assert_allclose(frame.to_numpy(), expected, atol=1e-12)


def test_sequence_features_has_the_six_columns_and_uses_the_top_n() -> None:
    lists = np.array([[[1, 2, 3, 9], [3, 2, 8, 1]]])
    frame = sequence_features(*_flat([[4, 4, 5]]), lists, top_n=3)
    assert tuple(frame.columns) == FEATURES
    assert frame.loc[0, "intersection"] == 2 and frame.loc[0, "jaccard"] == 0.5


def test_best_branch_ties_go_to_the_earliest_branch_and_match_the_paper_label() -> None:
    ranks = np.array([[3, 1], [2, 2], [11, 11], [1, 4]])  # LinRec, FMLP
    best = best_branch(ranks)
    assert best.tolist() == [1, 0, 0, 0]
    paper_label = (best == 0).astype(int)  # 0 if FMLP had the better reciprocal rank, else 1
    assert paper_label.tolist() == [0, 1, 1, 1]
    assert eligible(ranks).tolist() == [True, True, False, True]


def test_categories_and_counts_for_two_branches() -> None:
    # a category is the branch with the better rank (both in the top 10 or not), a tie is both
    ranks = np.array([[1, 11], [11, 3], [2, 2], [11, 11], [11, 11], [2, 5], [7, 4]])
    categories = winner_categories(ranks, ["linrec", "fmlp"])
    assert categories.tolist() == ["linrec", "fmlp", "both", "neither", "neither", "linrec",
                                   "fmlp"]
    counts = category_counts(categories)
    assert counts.to_dict("list") == {"category": ["linrec", "fmlp", "both", "neither"],
                                      "users": [2, 2, 1, 2]}


def test_categories_for_three_branches() -> None:
    branches = ["linrec", "fmlp", "sasrec"]
    assert category_names(branches) == ["linrec", "fmlp", "sasrec", "linrec+fmlp",
                                        "linrec+sasrec", "fmlp+sasrec", "all", "neither"]
    ranks = np.array([[1, 11, 4], [3, 11, 3], [11, 11, 11], [1, 1, 1]])
    assert winner_categories(ranks, branches).tolist() == ["linrec", "linrec+sasrec", "neither",
                                                           "all"]


@pytest.mark.parametrize("top_n", [1, 10])
def test_categories_respect_the_cutoff(top_n: int) -> None:
    ranks = np.array([[2, 11]])
    expected = "linrec" if top_n == 10 else "neither"
    assert winner_categories(ranks, ["linrec", "fmlp"], top_n).tolist() == [expected]


@pytest.mark.parametrize(("tie", "expected"), [
    ("first", [[0, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]]),
    ("second", [[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]),
    ("half", [[0, 1, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3]])])
def test_tie_labels(tie: str, expected: list[list[float]]) -> None:
    """A tie for the best rank goes to the earliest, the latest, or every tied branch equally;
    a strict winner is labelled alike by all three."""
    ranks = np.array([[3, 1, 4], [2, 2, 5], [1, 4, 1], [11, 11, 11]])
    labels = branch_labels(ranks, tie)
    np.testing.assert_allclose(labels, expected)
    if tie == "first":  # today's rule: the paper's label is best_branch == 0
        np.testing.assert_array_equal(labels.argmax(axis=1), best_branch(ranks))


def test_two_branch_tie_labels_are_the_papers_label_or_its_variants() -> None:
    ranks = np.array([[1, 3], [3, 1], [2, 2]])  # LinRec better, FMLP better, a tie
    assert branch_labels(ranks, "first")[:, 0].tolist() == [1, 0, 1]  # l.334, literally
    assert branch_labels(ranks, "second")[:, 0].tolist() == [1, 0, 0]
    assert branch_labels(ranks, "half")[:, 0].tolist() == [1, 0, 0.5]
    with pytest.raises(ValueError, match="tie must be one of"):
        branch_labels(ranks, "coin")


def test_label_classes_are_branches_then_shared_labels() -> None:
    labels = np.array([[1, 0], [0, 1], [0.5, 0.5], [0, 1], [0.5, 0.5]])
    assert label_classes(labels).tolist() == [0, 1, 2, 1, 2]
