"""The shared ranking protocol, checked against naive per-user NumPy references."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

from hybridrec.evaluation.ranking import RankResult, rank_full, rank_sampled
from hybridrec.protocols import PROTOCOLS


def _scores_fn(logits: Tensor) -> Callable[[Tensor], Tensor]:
    return lambda index: logits[index]


def _log_softmax_items(row: np.ndarray) -> np.ndarray:
    """log-softmax over items 1.. of one logit row (float64), indexed by item id."""
    items = row[1:].astype(np.float64)
    top = items.max()
    return row.astype(np.float64) - (top + np.log(np.exp(items - top).sum()))


def _reference_full(logits: np.ndarray, inputs: np.ndarray, targets: np.ndarray, k: int,
                    exclude_history: bool = True) -> RankResult:
    ranks, items, scores = [], [], []
    for row, history, target in zip(logits, inputs, targets, strict=True):
        excluded = {0} | (set(history.tolist()) - {int(target)} if exclude_history else set())
        eligible = [j for j in range(1, len(row)) if j not in excluded]
        ranks.append(1 + sum(row[j] >= row[target] for j in eligible if j != target))
        top = sorted(eligible, key=lambda j: (-row[j], j))[:k]
        items.append(top)
        scores.append(_log_softmax_items(row)[top])
    return RankResult(np.array(ranks), np.array(items), np.array(scores, dtype=np.float32))


def _reference_sampled(logits: np.ndarray, targets: np.ndarray, negatives: np.ndarray,
                       k: int) -> RankResult:
    ranks, items, scores = [], [], []
    for row, target, negs in zip(logits, targets, negatives, strict=True):
        ranks.append(1 + int(np.sum(row[negs] >= row[target])))
        top = sorted([int(target), *negs.tolist()], key=lambda j: (-row[j], j))[:k]
        items.append(top)
        scores.append(_log_softmax_items(row)[top])
    return RankResult(np.array(ranks), np.array(items), np.array(scores, dtype=np.float32))


def _assert_same(actual: RankResult, expected: RankResult) -> None:
    np.testing.assert_array_equal(actual.target_rank, expected.target_rank)
    np.testing.assert_array_equal(actual.topk_items, expected.topk_items)
    np.testing.assert_allclose(actual.topk_scores, expected.topk_scores, rtol=1e-5, atol=1e-5)
    assert actual.target_rank.dtype == np.int64
    assert actual.topk_scores.dtype == np.float32


def _random_case(seed: int, users: int = 23, items: int = 40, length: int = 8,
                 tied: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = (rng.integers(-3, 4, (users, items + 1)) if tied
              else rng.normal(size=(users, items + 1))).astype(np.float32)
    inputs = rng.integers(1, items + 1, (users, length))
    inputs[:, : length // 2] *= rng.random((users, length // 2)) < 0.5  # some left padding
    targets = rng.integers(1, items + 1, users)
    inputs[::3, -1] = targets[::3]  # every third target is also in its history
    return logits, inputs, targets


def _random_negatives(seed: int, targets: np.ndarray, items: int, m: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keys = rng.random((len(targets), items + 1))
    keys[:, 0] = np.inf
    keys[np.arange(len(targets)), targets] = np.inf
    return np.argsort(keys, axis=1)[:, :m]


def test_protocol_names() -> None:
    assert PROTOCOLS == ("full", "uniform99", "pop100")


def test_pessimistic_ties_full_and_sampled() -> None:
    logits = torch.tensor([[9.0, 1.0, 2.0, 2.0, 2.0, 2.0, 0.5, 3.0]])  # target = item 2
    inputs = torch.zeros((1, 3), dtype=torch.long)
    full = rank_full(_scores_fn(logits), inputs, torch.tensor([2]), 7, 3, 1)
    assert full.target_rank.tolist() == [5]  # item 7 above, then 3 ties: 1 + 1 + 3
    logits[0, 7] = 0.0
    full = rank_full(_scores_fn(logits), inputs, torch.tensor([2]), 7, 3, 1)
    assert full.target_rank.tolist() == [4]  # tied with 3 others -> 4
    assert full.topk_items.tolist() == [[2, 3, 4]]  # ties: lower id first
    sampled = rank_sampled(_scores_fn(logits), torch.tensor([5]),
                           torch.tensor([[1, 2, 3, 4, 6]]), 4, 1)
    assert sampled.target_rank.tolist() == [4]
    assert sampled.topk_items.tolist() == [[2, 3, 4, 5]]


def test_history_excluded_but_target_ranked_and_padding_never_ranked() -> None:
    logits = torch.tensor([[100.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    inputs = torch.tensor([[0, 0, 1, 3]])  # history {1, 3}; target 3 is in it
    result = rank_full(_scores_fn(logits), inputs, torch.tensor([3]), 5, 3, 1)
    assert result.target_rank.tolist() == [2]  # only item 2 (not in history) is above it
    assert result.topk_items.tolist() == [[2, 3, 4]]
    kept = rank_full(_scores_fn(logits), inputs, torch.tensor([3]), 5, 3, 1,
                     exclude_history=False)
    assert kept.target_rank.tolist() == [3]
    assert kept.topk_items.tolist() == [[1, 2, 3]]  # column 0's huge logit is ignored


def test_scores_are_catalogue_log_probabilities() -> None:
    logits = torch.tensor([[50.0, 2.0, 1.0, 0.0]])
    expected = torch.log_softmax(logits[:, 1:], dim=1)[0]
    full = rank_full(_scores_fn(logits), torch.tensor([[1]]), torch.tensor([2]), 3, 2, 1)
    assert full.topk_items.tolist() == [[2, 3]]
    np.testing.assert_allclose(full.topk_scores[0], expected[[1, 2]].numpy(), rtol=1e-6)
    sampled = rank_sampled(_scores_fn(logits), torch.tensor([3]), torch.tensor([[2]]), 2, 1)
    np.testing.assert_allclose(sampled.topk_scores[0], expected[[1, 2]].numpy(), rtol=1e-6)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("batch_size", [1, 4, 7, 23, 100])
def test_full_matches_naive_reference(batch_size: int, tied: bool) -> None:
    logits, inputs, targets = _random_case(seed=batch_size, tied=tied)
    k = 10
    result = rank_full(_scores_fn(torch.from_numpy(logits)), torch.from_numpy(inputs),
                       torch.from_numpy(targets), 40, k, batch_size)
    _assert_same(result, _reference_full(logits, inputs, targets, k))
    no_exclusion = rank_full(_scores_fn(torch.from_numpy(logits)), inputs, targets, 40, k,
                             batch_size, exclude_history=False)
    _assert_same(no_exclusion, _reference_full(logits, inputs, targets, k, False))


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("batch_size", [1, 5, 23, 64])
def test_sampled_matches_direct_computation(batch_size: int, tied: bool) -> None:
    logits, _, targets = _random_case(seed=100 + batch_size, tied=tied)
    negatives = _random_negatives(batch_size, targets, 40, 15)
    result = rank_sampled(_scores_fn(torch.from_numpy(logits)), targets, negatives, 10,
                          batch_size)
    _assert_same(result, _reference_sampled(logits, targets, negatives, 10))
    gathered = np.take_along_axis(logits, negatives, axis=1)
    direct = 1 + (gathered >= logits[np.arange(len(targets)), targets][:, None]).sum(axis=1)
    np.testing.assert_array_equal(result.target_rank, direct)


def test_topk_lists_are_sorted_valid_and_agree_with_ranks() -> None:
    logits, inputs, targets = _random_case(seed=7, users=50, items=30, tied=True)
    k = 10
    full = rank_full(_scores_fn(torch.from_numpy(logits)), inputs, targets, 30, k, 16)
    negatives = _random_negatives(8, targets, 30, 20)
    sampled = rank_sampled(_scores_fn(torch.from_numpy(logits)), targets, negatives, k, 16)
    for result in (full, sampled):
        assert np.all(np.diff(result.topk_scores, axis=1) <= 0)
        hit = result.target_rank <= k
        position = np.argmax(result.topk_items == targets[:, None], axis=1) + 1
        found = (result.topk_items == targets[:, None]).any(axis=1)
        # Pessimistic ties: a listed target sits at or above its rank; an unlisted one is > k
        # unless ties at the cut pushed it out (then its tied peers fill the list).
        assert np.all(position[found] <= result.target_rank[found])
        assert np.all(found[hit])
    history_hits = (full.topk_items[:, :, None] == inputs[:, None, :]).any(axis=2)
    assert not np.any(history_hits & (full.topk_items != targets[:, None]))
    assert np.all(full.topk_items >= 1)
    candidates = np.concatenate([targets[:, None], negatives], axis=1)
    assert np.all((sampled.topk_items[:, :, None] == candidates[:, None, :]).any(axis=2))


def test_rank_equals_topk_position_without_ties() -> None:
    logits, inputs, targets = _random_case(seed=3, users=60, items=25)
    k = 10
    for result in (
        rank_full(_scores_fn(torch.from_numpy(logits)), inputs, targets, 25, k, 8),
        rank_sampled(_scores_fn(torch.from_numpy(logits)), targets,
                     _random_negatives(4, targets, 25, 12), k, 8),
    ):
        hit = result.target_rank <= k
        assert hit.any()
        position = np.argmax(result.topk_items == targets[:, None], axis=1) + 1
        np.testing.assert_array_equal(position[hit], result.target_rank[hit])
        assert not np.any(result.topk_items[~hit] == targets[~hit, None])


def test_half_precision_logits_are_upcast() -> None:
    logits, inputs, targets = _random_case(seed=11)
    half = torch.from_numpy(logits).half()
    result = rank_full(_scores_fn(half), inputs, targets, 40, 5, 8)
    _assert_same(result, _reference_full(half.float().numpy(), inputs, targets, 5))


def test_empty_input() -> None:
    result = rank_full(_scores_fn(torch.zeros(0, 6)), torch.zeros((0, 2), dtype=torch.long),
                       torch.zeros(0, dtype=torch.long), 5, 3, 4)
    assert result.target_rank.shape == (0,) and result.topk_items.shape == (0, 3)


def test_invalid_inputs_raise() -> None:
    logits = torch.randn(2, 6)
    fn = _scores_fn(logits)
    inputs = torch.tensor([[1, 2], [0, 3]])
    with pytest.raises(ValueError, match="targets"):
        rank_full(fn, inputs, torch.tensor([1, 6]), 5, 2, 2)
    with pytest.raises(ValueError, match="k must be"):
        rank_full(fn, inputs, torch.tensor([1, 2]), 5, 6, 2)
    with pytest.raises(ValueError, match="shape"):
        rank_full(fn, inputs, torch.tensor([1, 2]), 4, 2, 2)
    with pytest.raises(TypeError):
        rank_full(fn, inputs.float(), torch.tensor([1, 2]), 5, 2, 2)
    with pytest.raises(ValueError, match="fewer than k"):
        rank_full(fn, torch.tensor([[1, 2], [4, 5]]), torch.tensor([3, 3]), 5, 4, 2)
    nan = logits.clone()
    nan[1, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rank_full(_scores_fn(nan), inputs, torch.tensor([1, 2]), 5, 2, 2)
    with pytest.raises(ValueError, match="repeat"):
        rank_sampled(fn, torch.tensor([1, 2]), torch.tensor([[2, 2], [3, 4]]), 2, 2)
    with pytest.raises(ValueError, match="repeat"):
        rank_sampled(fn, torch.tensor([1, 2]), torch.tensor([[2, 1], [3, 4]]), 2, 2)
    with pytest.raises(ValueError, match="candidates"):
        rank_sampled(fn, torch.tensor([1, 2]), torch.tensor([[2, 9], [3, 4]]), 2, 2)
    with pytest.raises(ValueError, match="candidates"):
        rank_sampled(fn, torch.tensor([1, 2]), torch.tensor([[0, 3], [3, 4]]), 2, 2)


def test_scores_fn_receives_row_positions_on_the_data_device() -> None:
    seen: list[Tensor] = []
    logits = torch.randn(5, 8)

    def fn(index: Tensor) -> Tensor:
        seen.append(index)
        return logits[index]

    targets = torch.tensor([1, 2, 3, 4, 5])
    rank_sampled(fn, targets, torch.tensor([[6, 7]] * 5), 2, 2)
    assert [t.tolist() for t in seen] == [[0, 1], [2, 3], [4]]
    assert all(t.dtype == torch.long and t.device == targets.device for t in seen)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    logits, inputs, targets = _random_case(seed=5, users=300, items=500, length=20, tied=True)
    negatives = _random_negatives(6, targets, 500, 99)
    cpu_logits = torch.from_numpy(logits)
    gpu_logits = cpu_logits.cuda()
    full_cpu = rank_full(_scores_fn(cpu_logits), inputs, targets, 500, 10, 64)
    full_gpu = rank_full(_scores_fn(gpu_logits), torch.from_numpy(inputs).cuda(),
                         torch.from_numpy(targets).cuda(), 500, 10, 64)
    _assert_same(full_gpu, full_cpu)
    sampled_cpu = rank_sampled(_scores_fn(cpu_logits), targets, negatives, 10, 64)
    sampled_gpu = rank_sampled(_scores_fn(gpu_logits), targets, negatives, 10, 64)
    _assert_same(sampled_gpu, sampled_cpu)
