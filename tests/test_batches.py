"""Training batches: vectorised gathering equals a per-sample reference; negatives are valid."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrec.training.batches import (
    NegativeSampler,
    Sequences,
    TrainingBatches,
    causal_samples,
    prefix_samples,
)

sequence_lists = st.lists(st.lists(st.integers(1, 30), min_size=0, max_size=25),
                          min_size=1, max_size=12)


def left_pad(items: list[int], n: int) -> list[int]:
    items = items[-n:] if n else []
    return [0] * (n - len(items)) + items


def naive_prefix(seqs: list[list[int]], n: int) -> tuple[list[list[int]], list[int], list[int]]:
    inputs, targets, users = [], [], []
    for u, seq in enumerate(seqs):
        for t in range(1, len(seq)):
            inputs.append(left_pad(seq[:t], n))
            targets.append(seq[t])
            users.append(u)
    return inputs, targets, users


def naive_causal(seqs: list[list[int]], n: int) -> tuple[list[list[int]], list[list[int]]]:
    inputs, targets = [], []
    for seq in seqs:
        end = len(seq)  # exclusive end of the targets of the current window
        while end > 1:
            first = max(1, end - n)  # first target position of this window
            inputs.append(left_pad(seq[first - 1:end - 1], n))
            targets.append(left_pad(seq[first:end], n))
            end = first
    return inputs, targets


@settings(max_examples=60, deadline=None)
@given(seqs=sequence_lists, n=st.integers(1, 9))
def test_prefix_batches_match_reference(seqs: list[list[int]], n: int) -> None:
    data = Sequences.from_lists(seqs, num_items=30)
    batches = TrainingBatches(data, "prefix", n)
    inputs, targets, users = naive_prefix(seqs, n)
    assert len(batches) == len(targets)
    if not targets:
        return
    batch = batches.gather(torch.arange(len(batches)))
    assert batch.inputs.tolist() == inputs
    assert batch.targets.tolist() == targets
    assert batches.samples.user.tolist() == users
    assert batch.negatives is None


@settings(max_examples=60, deadline=None)
@given(seqs=sequence_lists, n=st.integers(1, 9))
def test_causal_batches_match_reference(seqs: list[list[int]], n: int) -> None:
    data = Sequences.from_lists(seqs, num_items=30)
    batches = TrainingBatches(data, "causal", n)
    inputs, targets = naive_causal(seqs, n)
    assert len(batches) == len(inputs)
    if not inputs:
        return
    batch = batches.gather(torch.arange(len(batches)))
    assert batch.inputs.tolist() == inputs
    assert batch.targets.tolist() == targets
    # every target position 1..len-1 of every user is predicted exactly once
    assert int((batch.targets != 0).sum()) == sum(max(len(s) - 1, 0) for s in seqs)


def test_causal_tiles_long_sequence() -> None:
    data = Sequences.from_lists([list(range(1, 12))])  # 11 items, 10 targets
    batch = TrainingBatches(data, "causal", 4).gather(torch.arange(3))
    assert batch.inputs.tolist() == [[7, 8, 9, 10], [3, 4, 5, 6], [0, 0, 1, 2]]
    assert batch.targets.tolist() == [[8, 9, 10, 11], [4, 5, 6, 7], [0, 0, 2, 3]]


def test_prefix_truncates_and_left_pads() -> None:
    data = Sequences.from_lists([[5, 6, 7, 8, 9], [3], [4, 2]])
    batches = TrainingBatches(data, "prefix", 3)
    assert batches.samples.start.tolist() == [0] * 4 + [6]
    batch = batches.gather(torch.arange(len(batches)))
    assert batch.inputs.tolist() == [[0, 0, 5], [0, 5, 6], [5, 6, 7], [6, 7, 8], [0, 0, 4]]
    assert batch.targets.tolist() == [6, 7, 8, 9, 2]


def test_sample_index_functions_agree_with_counts() -> None:
    data = Sequences.from_lists([[1, 2, 3], [], [4], [5, 6, 7, 8, 9, 10, 11]])
    assert len(prefix_samples(data)) == 2 + 0 + 0 + 6
    assert len(causal_samples(data, 4)) == 1 + 0 + 0 + 2


def test_epoch_is_a_permutation_and_deterministic() -> None:
    seqs = [[(u * 7 + i) % 30 + 1 for i in range(u % 9 + 2)] for u in range(40)]
    batches = TrainingBatches(Sequences.from_lists(seqs, 30), "prefix", 5, negatives=True)
    first = list(batches.epoch(16, torch.Generator().manual_seed(3)))
    again = list(batches.epoch(16, torch.Generator().manual_seed(3)))
    assert [len(b) for b in first][:-1] == [16] * (len(first) - 1)
    assert sum(len(b) for b in first) == len(batches)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
        assert a.negatives is not None and b.negatives is not None
        assert torch.equal(a.negatives, b.negatives)
    seen = sorted((tuple(r.tolist()), int(t)) for b in first for r, t in zip(b.inputs, b.targets,
                                                                            strict=True))
    full = batches.gather(torch.arange(len(batches)))
    expect = sorted((tuple(r.tolist()), int(t)) for r, t in zip(full.inputs, full.targets,
                                                                  strict=True))
    assert seen == expect


@settings(max_examples=40, deadline=None)
@given(seqs=st.lists(st.lists(st.integers(1, 12), min_size=1, max_size=11), min_size=1,
                     max_size=8), seed=st.integers(0, 2**31))
def test_negatives_never_in_user_sequence(seqs: list[list[int]], seed: int) -> None:
    data = Sequences.from_lists(seqs, num_items=12)
    sampler = NegativeSampler(data)
    users = torch.arange(len(seqs)).repeat_interleave(50)
    negs = sampler.sample(users, torch.Generator().manual_seed(seed))
    for u, item in zip(users.tolist(), negs.tolist(), strict=True):
        assert 1 <= item <= 12
        assert item not in seqs[u]


def test_negatives_cover_allowed_items_uniformly() -> None:
    data = Sequences.from_lists([[1, 2, 3, 4, 5]], num_items=10)
    negs = NegativeSampler(data).sample(torch.zeros(50_000, dtype=torch.int64),
                                        torch.Generator().manual_seed(0))
    counts = torch.bincount(negs, minlength=11)
    assert counts[:6].sum() == 0
    assert torch.all((counts[6:] - 10_000).abs() < 500)


def test_causal_negatives_are_masked_with_targets() -> None:
    data = Sequences.from_lists([[1, 2, 3], [4, 5, 6, 7, 8, 9]], num_items=20)
    batches = TrainingBatches(data, "causal", 4, negatives=True)
    for batch in batches.epoch(8, torch.Generator().manual_seed(1)):
        assert batch.negatives is not None
        assert torch.equal(batch.negatives == 0, batch.targets == 0)
        for row, negs in zip(batch.inputs.tolist(), batch.negatives.tolist(), strict=True):
            user_items = set(range(1, 4)) if 1 in row or 2 in row else set(range(4, 10))
            assert not set(negs) & user_items


def test_user_with_whole_catalogue_raises() -> None:
    data = Sequences.from_lists([[1, 2, 3], [1, 2]], num_items=3)
    sampler = NegativeSampler(data)
    assert sampler.sample(torch.tensor([1, 1]), torch.Generator()).tolist() == [3, 3]
    with pytest.raises(ValueError, match="whole catalogue"):
        sampler.sample(torch.tensor([0]), torch.Generator())


def test_from_arrow_parquet_roundtrip_and_slices(tmp_path: Path) -> None:
    seqs = [[3, 1, 2], [], [4, 4, 5, 1]]
    table = pa.table({"user": pa.array([1, 2, 3], pa.int32()),
                      "items": pa.array(seqs, pa.list_(pa.int32()))})
    pq.write_table(table, tmp_path / "train.parquet")
    data = Sequences.from_arrow(pq.read_table(tmp_path / "train.parquet")["items"], num_items=5)
    assert data.items.tolist() == [3, 1, 2, 4, 4, 5, 1]
    assert data.offsets.tolist() == [0, 3, 3, 7]
    sliced = Sequences.from_arrow(pa.array(seqs, pa.list_(pa.int32())).slice(1), num_items=5)
    assert sliced.items.tolist() == [4, 4, 5, 1] and sliced.offsets.tolist() == [0, 0, 4]
    assert data.fingerprint() != sliced.fingerprint()


def test_sequences_validate_ids() -> None:
    with pytest.raises(ValueError, match="item ids"):
        Sequences.from_lists([[0, 1]], num_items=3)
    with pytest.raises(ValueError, match="item ids"):
        Sequences.from_lists([[4]], num_items=3)
