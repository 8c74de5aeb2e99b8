"""Preprocessing, leave-one-out split, candidates and the dataset folder."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import raw_frame, shared_file

from hybridrec.data.candidates import (
    candidates_table,
    protocol_rng,
    sample_negatives,
)
from hybridrec.data.preprocess import PreprocessConfig, build_interactions, k_core
from hybridrec.data.readers import read_interactions
from hybridrec.data.split import leave_one_out_split
from hybridrec.data.store import (
    SplitArrays,
    candidate_files,
    dataset_files,
    write_candidates,
    write_dataset,
)
from hybridrec.errors import HybridrecError
from hybridrec.protocols import SAMPLED_PROTOCOLS


def random_raw(seed: int, n_users: int = 60, n_items: int = 300, max_len: int = 30):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len, n_users)
    users = np.repeat(rng.permutation(np.arange(100, 100 + n_users)), lengths)
    items = np.concatenate([rng.choice(n_items, size=n, replace=False) + 1000 for n in lengths])
    times = rng.integers(0, 50, len(users))  # many ties on purpose
    return raw_frame(users, items, times, rng.integers(1, 6, len(users)).astype(float))


def naive_sequences(raw):
    """Per-user item lists ordered by (timestamp, file row): the reference for ordering."""
    out: dict = {}
    for row, (u, i, t) in enumerate(zip(raw["user"], raw["item"], raw["timestamp"], strict=True)):
        out.setdefault(u, []).append((t, row, i))
    return {u: [i for _, _, i in sorted(v)] for u, v in out.items()}


def test_order_ids_and_split_match_a_per_user_reference():
    raw = random_raw(0)
    data = build_interactions(raw, PreprocessConfig())
    reference = {u: s for u, s in naive_sequences(raw).items() if len(s) >= 3}
    assert data.dropped_users == len(naive_sequences(raw)) - len(reference)
    user_of = dict(zip(data.user_ids["user"], data.user_ids["original_id"], strict=True))
    item_of = dict(zip(data.item_ids["item"], data.item_ids["original_id"], strict=True))
    splits = leave_one_out_split(data)
    train, valid, test = (splits[s].to_pylist() for s in ("train", "valid", "test"))
    assert len(test) == len(reference)
    for tr, va, te in zip(train, valid, test, strict=True):
        seq = reference[user_of[te["user"]]]
        assert [item_of[i] for i in tr["items"]] == seq[:-2]
        assert [item_of[i] for i in va["items"]] == seq[:-2]
        assert item_of[va["target"]] == seq[-2]
        assert [item_of[i] for i in te["items"]] == seq[:-1]
        assert item_of[te["target"]] == seq[-1]


def test_internal_ids_are_contiguous_and_follow_numeric_order():
    raw = raw_frame([5, 5, 5, 10, 10, 10], [30, 2, 100, 2, 30, 7], [1, 2, 3, 1, 2, 3])
    data = build_interactions(raw, PreprocessConfig())
    assert data.item_ids["original_id"].tolist() == [2, 7, 30, 100]
    assert data.item_ids["item"].tolist() == [1, 2, 3, 4]
    assert data.user_ids["user"].tolist() == [1, 2]
    assert data.items.tolist() == [3, 1, 4, 1, 3, 2]


def test_equal_timestamps_keep_file_order():
    raw = raw_frame(["a"] * 4, ["x", "y", "z", "w"], [5, 5, 1, 5])
    data = build_interactions(raw, PreprocessConfig())
    item_of = dict(zip(data.item_ids["item"], data.item_ids["original_id"], strict=True))
    assert [item_of[i] for i in data.items] == ["z", "x", "y", "w"]


def test_rating_threshold_and_k_core():
    raw = random_raw(1)
    data = build_interactions(raw, PreprocessConfig(min_rating=3, user_core=5, item_core=2))
    counts_user = np.bincount(data.users)[1:]
    counts_item = np.bincount(data.items)[1:]
    assert counts_user.min() >= 5 and counts_item.min() >= 2
    kept = raw[raw["rating"] >= 3]
    reference = k_core(kept, 5, 2)
    assert len(data.items) == len(reference)


def test_filtering_everything_away_is_an_error():
    raw = raw_frame([1, 1, 1], [1, 2, 3], [1, 2, 3], [1.0, 1.0, 1.0])
    with pytest.raises(HybridrecError, match="no user has 3 or more interactions"):
        build_interactions(raw, PreprocessConfig(min_rating=4))


@pytest.mark.parametrize("name", sorted(SAMPLED_PROTOCOLS))
def test_negatives_are_distinct_unseen_and_reproducible(name):
    data = build_interactions(random_raw(2, n_items=150), PreprocessConfig())
    protocol = SAMPLED_PROTOCOLS[name]
    first = sample_negatives(data, protocol, protocol_rng(3, "test", name))
    again = sample_negatives(data, protocol, protocol_rng(3, "test", name))
    other = sample_negatives(data, protocol, protocol_rng(3, "valid", name))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (len(data.user_ids), protocol.negatives)
    offsets = data.offsets
    for u in range(len(first)):
        seen = set(data.items[offsets[u]:offsets[u + 1]].tolist())
        row = first[u].tolist()
        assert len(set(row)) == len(row) and not seen & set(row) and 0 not in row


@pytest.mark.parametrize("name", sorted(SAMPLED_PROTOCOLS))
def test_negatives_do_not_depend_on_the_block_size(name):
    """Blocks of users read the stream as one block does (the unblocked sampler's output),
    also for a user left short, who is sampled by Gumbel-top-k after every block."""
    raw = random_raw(5)  # items 1000..1299
    rich = raw_frame(np.full(180, 10_000), np.arange(1000, 1180), np.arange(180))  # 120 unseen
    data = build_interactions(pd.concat([raw, rich], ignore_index=True), PreprocessConfig())
    protocol = SAMPLED_PROTOCOLS[name]
    whole = sample_negatives(data, protocol, protocol_rng(1, "test", name), block_cells=1 << 40)
    for block_cells in (1, 7 * 206, 1000):
        blocked = sample_negatives(data, protocol, protocol_rng(1, "test", name),
                                   block_cells=block_cells)
        np.testing.assert_array_equal(blocked, whole)


def test_popularity_negatives_follow_popularity():
    rng = np.random.default_rng(4)
    n_items = 400
    popularity = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(n_items, size=20_000, p=popularity / popularity.sum()) + 1
    users = np.repeat(np.arange(1000), 20)
    data = build_interactions(raw_frame(users, items, np.arange(20_000)),
                              PreprocessConfig(dedupe=True))
    pop100 = SAMPLED_PROTOCOLS["pop100"]
    negatives = sample_negatives(data, pop100, protocol_rng(0, "test", "pop100"))
    uniform = sample_negatives(data, SAMPLED_PROTOCOLS["uniform99"], protocol_rng(0, "test", "u"))
    counts = np.bincount(data.items, minlength=len(data.item_ids) + 1)
    # popular items are drawn far more often by pop100 than by uniform99
    assert counts[negatives].mean() > 2 * counts[uniform].mean()


def test_a_user_who_saw_almost_everything_is_sampled_exactly_or_rejected():
    # 200 items; user 1 saw items 1..101, so exactly 99 remain for them
    users = np.repeat([1, 2], [101, 99])
    items = np.concatenate([np.arange(1, 102), np.arange(102, 201)])
    data = build_interactions(raw_frame(users, items, np.arange(len(users))), PreprocessConfig())
    negatives = sample_negatives(data, SAMPLED_PROTOCOLS["uniform99"], protocol_rng(0, "t", "u"))
    assert negatives[0].tolist() == list(range(102, 201))
    with pytest.raises(HybridrecError, match="user 1 has only 99 items"):
        sample_negatives(data, SAMPLED_PROTOCOLS["pop100"], protocol_rng(0, "t", "p"))


def _digests(root):
    files = {**dataset_files(root), **{f"{split}.{protocol}": path
                                       for protocol in SAMPLED_PROTOCOLS
                                       for split, path in candidate_files(root, protocol).items()}}
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}


def _write(raw, root, seed, protocols=tuple(SAMPLED_PROTOCOLS)):
    write_dataset(raw, PreprocessConfig(), root, dataset="test")
    for protocol in protocols:
        write_candidates(root, protocol, seed=seed, dataset="test")


def test_same_seed_gives_byte_identical_files(tmp_path):
    raw = random_raw(5)
    _write(raw, tmp_path / "a", seed=11)
    _write(raw, tmp_path / "b", seed=11)
    _write(raw, tmp_path / "c", seed=12)
    a, b, c = _digests(tmp_path / "a"), _digests(tmp_path / "b"), _digests(tmp_path / "c")
    assert a == b
    assert a["test.uniform99"] != c["test.uniform99"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_candidates_drawn_from_the_folder_equal_those_drawn_in_memory(tmp_path):
    raw = random_raw(6, n_items=150)
    _write(raw, tmp_path, seed=3, protocols=["pop100"])
    data = build_interactions(raw, PreprocessConfig())
    targets = pq.read_table(tmp_path / "split" / "test.parquet").column("target").to_numpy()
    expected = candidates_table(data, targets, SAMPLED_PROTOCOLS["pop100"],
                                protocol_rng(3, "test", "pop100"))
    assert pq.read_table(candidate_files(tmp_path, "pop100")["test"]).equals(expected)
    assert not candidate_files(tmp_path, "uniform99")["test"].exists()  # only what was asked


def test_a_catalogue_too_small_for_a_protocol_names_dataset_protocol_users_and_setting(tmp_path):
    # 40 items: every user has fewer than 99 unseen items; full ranking needs no candidates
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(100, 130), 6)
    raw = raw_frame(users, rng.integers(1, 41, len(users)), np.arange(len(users)))
    write_dataset(raw, PreprocessConfig(), tmp_path, dataset="tiny")
    message = (r"datasets\.tiny: protocol uniform99 draws 99 negatives .* 30 of 30 users .* "
               r"e\.g\. user\(s\) 100, 101, .*remove 'uniform99' from evaluation\.protocols")
    with pytest.raises(HybridrecError, match=message):
        write_candidates(tmp_path, "uniform99", seed=0, dataset="tiny")
    assert not (tmp_path / "candidates").exists()


def test_users_of_exactly_three_interactions_leave_nothing_to_train_on(tmp_path):
    raw = raw_frame(np.repeat([1, 2, 3], 3), [1, 2, 3, 2, 3, 4, 1, 3, 4], np.arange(9))
    with pytest.raises(HybridrecError, match=r"datasets\.three: every user has fewer than 4 "
                                             r".*datasets\.three\.preprocess"):
        write_dataset(raw, PreprocessConfig(), tmp_path, dataset="three")
    assert not list(tmp_path.rglob("*.parquet"))
    # one longer user is enough: the others still serve as evaluation users
    longer = raw_frame(np.repeat([1, 2, 3], [3, 3, 4]), [1, 2, 3, 2, 3, 4, 1, 3, 4, 2],
                       np.arange(10))
    assert write_dataset(longer, PreprocessConfig(), tmp_path, dataset="three")["users"] == 3


def test_exact_duplicate_rows_are_counted_in_stats_and_logged(tmp_path, caplog):
    # (1, 10, t=5) twice, (2, 11, t=7) three times; (1, 12) at two times is no duplicate
    raw = raw_frame([1, 1, 1, 1, 1, 2, 2, 2, 2, 2], [10, 10, 12, 12, 13, 11, 11, 11, 14, 15],
                    [5, 5, 1, 2, 3, 7, 7, 7, 8, 9])
    with caplog.at_level("INFO"):
        stats = write_dataset(raw, PreprocessConfig(), tmp_path, dataset="dups")
    assert stats["duplicate_rows"] == 3 and stats["interactions"] == 10
    assert "3 rows repeat an earlier row's (user, item, timestamp)" in caplog.text
    untimed = raw_frame([1, 1, 1, 1], [10, 10, 10, 11])  # repeat consumption, not duplicates
    assert build_interactions(untimed, PreprocessConfig()).duplicate_rows == 0


def test_padded_inputs_are_left_padded_and_truncated():
    split = SplitArrays(users=np.array([1, 2], dtype=np.int32),
                        items=np.array([1, 2, 3, 4, 5, 7, 8], dtype=np.int32),
                        offsets=np.array([0, 5, 7]), targets=np.array([6, 9], dtype=np.int32))
    np.testing.assert_array_equal(split.padded(3), [[3, 4, 5], [0, 7, 8]])
    np.testing.assert_array_equal(split.padded(6), [[0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 7, 8]])


@pytest.mark.integration
def test_real_beauty_statistics_and_targets(tmp_path):
    path = shared_file("beauty/Beauty.txt")
    raw = read_interactions(path, "fmlp_txt")
    stats = write_dataset(raw, PreprocessConfig(), tmp_path, dataset="beauty-fmlp")
    assert (stats["users"], stats["items"], stats["interactions"]) == (22_363, 12_101, 198_502)
    lines = [line.split() for line in path.read_text().splitlines()]
    valid = pq.read_table(tmp_path / "split" / "valid.parquet").column("target").to_numpy()
    test = pq.read_table(tmp_path / "split" / "test.parquet").column("target").to_numpy()
    # Beauty.txt ids are 1..n, so internal ids equal the file's ids
    np.testing.assert_array_equal(valid, [int(line[-2]) for line in lines])
    np.testing.assert_array_equal(test, [int(line[-1]) for line in lines])
