"""Metrics from target ranks, checked against scikit-learn and a plain-Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import ndcg_score

from hybridrec.evaluation.metrics import METRIC_KEYS, metrics_from_ranks, per_user_metrics

rank_arrays = arrays(np.int64, st.integers(1, 60), elements=st.integers(1, 500))


def _python_reference(ranks: list[int], k: int) -> dict[str, float]:
    """HR@k, MRR@k and untruncated MRR, one user at a time."""
    hr = mrr_k = mrr = 0.0
    for rank in ranks:
        if rank <= k:
            hr += 1.0
            mrr_k += 1.0 / rank
        mrr += 1.0 / rank
    n = len(ranks)
    return {"hr": hr / n, "mrr@k": mrr_k / n, "mrr": mrr / n}


def _sklearn_ndcg(ranks: np.ndarray, k: int) -> float:
    """NDCG@k by scikit-learn: one relevant item per row, placed at position ``rank``.

    Scores are distinct (n_items, n_items - 1, ...), so sklearn's tie averaging never applies.
    """
    n_items = int(ranks.max()) + 3
    y_score = np.tile(np.arange(n_items, 0, -1, dtype=np.float64), (len(ranks), 1))
    y_true = np.zeros_like(y_score)
    y_true[np.arange(len(ranks)), ranks - 1] = 1.0
    return float(ndcg_score(y_true, y_score, k=k))


def test_default_keys_and_order() -> None:
    assert tuple(metrics_from_ranks(np.array([1, 2, 30]))) == METRIC_KEYS
    assert set(per_user_metrics(np.array([1]))) == set(METRIC_KEYS) - {"users"}


def test_hand_computed_values() -> None:
    m = metrics_from_ranks(np.array([1, 3, 11]))
    assert m["users"] == 3
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@5"] == pytest.approx(2 / 3)
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 11) / 3)


@given(rank_arrays)
def test_matches_independent_references(ranks: np.ndarray) -> None:
    m = metrics_from_ranks(ranks)
    for k in (1, 5, 10):
        assert m[f"hr@{k}"] == pytest.approx(_python_reference(ranks.tolist(), k)["hr"])
    ref10 = _python_reference(ranks.tolist(), 10)
    assert m["mrr@10"] == pytest.approx(ref10["mrr@k"])
    assert m["mrr"] == pytest.approx(ref10["mrr"])
    for k in (5, 10):
        assert m[f"ndcg@{k}"] == pytest.approx(_sklearn_ndcg(ranks, k), abs=1e-12)


@given(rank_arrays)
def test_properties(ranks: np.ndarray) -> None:
    m = metrics_from_ranks(ranks)
    per_user = per_user_metrics(ranks)
    assert all(0.0 <= m[key] <= 1.0 for key in METRIC_KEYS if key != "users")
    assert m["hr@1"] <= m["hr@5"] <= m["hr@10"]
    assert m["mrr@10"] <= m["mrr"]
    assert m["ndcg@10"] >= m["hr@1"]
    assert np.all(per_user["ndcg@10"] >= per_user["hr@1"])
    assert np.all(per_user["mrr@10"] <= per_user["ndcg@10"])  # 1/r <= 1/log2(r+1)
    for key, values in per_user.items():
        assert values.shape == ranks.shape
        assert m[key] == pytest.approx(values.mean())


def test_tensor_input_and_custom_cutoffs() -> None:
    ranks = torch.tensor([1, 2, 4, 50])
    m = metrics_from_ranks(ranks, hr_cutoffs=(3,), ndcg_cutoffs=(1, 20), mrr_cutoffs=())
    assert list(m) == ["hr@3", "ndcg@1", "ndcg@20", "mrr", "users"]
    assert m["hr@3"] == pytest.approx(0.5)
    assert m["ndcg@1"] == pytest.approx(0.25)  # NDCG@1 == HR@1
    assert m == metrics_from_ranks(ranks.numpy(), hr_cutoffs=(3,), ndcg_cutoffs=(1, 20),
                                   mrr_cutoffs=())


@pytest.mark.parametrize("bad", [np.array([0, 1]), np.array([1.0, 2.0]), np.ones((2, 2), int)])
def test_rejects_invalid_ranks(bad: np.ndarray) -> None:
    with pytest.raises((ValueError, TypeError)):
        per_user_metrics(bad)


def test_rejects_empty_and_bad_cutoffs() -> None:
    with pytest.raises(ValueError, match="zero users"):
        metrics_from_ranks(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="cutoffs"):
        per_user_metrics(np.array([1]), hr_cutoffs=(0,))
