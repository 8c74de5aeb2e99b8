"""Aligning branch exports on original ids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.align import (
    PAD,
    align_branches,
    align_sequences,
    flatten_list_column,
    target_ranks,
)


def _export(users: list[int], items: list[list[int]], targets: list[int]) -> pd.DataFrame:
    """A predictions export as pandas reads it (docs/contracts.md)."""
    return pd.DataFrame({
        "user": np.asarray(users, dtype=np.int32),
        "items": [np.asarray(row, dtype=np.int32) for row in items],
        "scores": [np.log(np.linspace(0.5, 0.1, len(row))).astype(np.float32) for row in items],
        "target": np.asarray(targets, dtype=np.int32),
        "target_rank": np.ones(len(users), dtype=np.int32),
    })


def _mapping(column: str, original: Sequence[object], internal: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"original_id": original, column: np.asarray(internal, dtype=np.int32)})


@pytest.fixture
def two_branches() -> dict[str, dict[str, pd.DataFrame]]:
    """Two branches with their own numbering of the same users and items.

    Original users "u1", "u2", "u3"; original items "a".."f". Branch linrec numbers them in
    order, branch fmlp in reverse, and lists users in another order.
    """
    items = ["a", "b", "c", "d", "e", "f"]
    users = ["u1", "u2", "u3"]
    lin_items = _mapping("item", items, [1, 2, 3, 4, 5, 6])
    fm_items = _mapping("item", items, [6, 5, 4, 3, 2, 1])
    lin_users = _mapping("user", users, [1, 2, 3])
    fm_users = _mapping("user", users, [3, 2, 1])
    lin = _export([1, 2, 3], [[1, 2, 3], [4, 5, 6], [2, 3]], [1, 6, 5])  # a, f, e
    fmlp = _export([1, 3, 2], [[6, 5, 4], [1, 2, 3], [3, 1]], [2, 6, 1])  # u3: e; u1: a; u2: f
    return {"exports": {"linrec": lin, "fmlp": fmlp},
            "users": {"linrec": lin_users, "fmlp": fm_users},
            "items": {"linrec": lin_items, "fmlp": fm_items}}


def _original(aligned, array: np.ndarray) -> list:
    return [aligned.vocabulary[i] if i != PAD else None for i in array.tolist()]


def test_lists_are_mapped_to_original_ids_and_joined_per_user(two_branches) -> None:
    aligned = align_branches(two_branches["exports"], two_branches["users"],
                             two_branches["items"], "toy", "valid")
    assert aligned.branches == ("linrec", "fmlp")
    assert aligned.users.tolist() == ["u1", "u2", "u3"]
    assert aligned.lists.shape == (3, 2, 3)
    assert _original(aligned, aligned.lists[0, 0]) == ["a", "b", "c"]
    assert _original(aligned, aligned.lists[0, 1]) == ["f", "e", "d"]  # fmlp internal 3 = u1
    assert _original(aligned, aligned.lists[2, 0]) == ["b", "c", None]  # padded
    assert _original(aligned, aligned.lists[2, 1]) == ["a", "b", "c"]
    assert _original(aligned, aligned.lists[1, 1]) == ["d", "f", None]
    assert _original(aligned, aligned.target) == ["a", "f", "e"]
    assert np.isnan(aligned.scores[2, 0, 2]) and not np.isnan(aligned.scores[2, 0, :2]).any()
    assert sorted(aligned.vocabulary.tolist()) == aligned.vocabulary.tolist()


def test_a_missing_user_is_named(two_branches) -> None:
    exports = dict(two_branches["exports"])
    exports["fmlp"] = exports["fmlp"][exports["fmlp"]["user"] != 2]  # drops u2
    with pytest.raises(HybridrecError, match=r"toy/test.*'fmlp' lacks 1 user.*'u2'"):
        align_branches(exports, two_branches["users"], two_branches["items"], "toy", "test")


def test_a_different_target_is_named(two_branches) -> None:
    exports = dict(two_branches["exports"])
    fmlp = exports["fmlp"].copy()
    fmlp.loc[fmlp["user"] == 3, "target"] = 5  # u1: item b instead of a
    exports["fmlp"] = fmlp
    with pytest.raises(HybridrecError, match=r"toy/valid: targets differ.*'u1': 'a' vs 'b'"):
        align_branches(exports, two_branches["users"], two_branches["items"], "toy", "valid")


def test_an_unmapped_item_is_named(two_branches) -> None:
    items = dict(two_branches["items"])
    items["linrec"] = items["linrec"][items["linrec"]["item"] != 4]
    with pytest.raises(HybridrecError, match=r"branch 'linrec'.*item ids missing.*\[4\]"):
        align_branches(two_branches["exports"], two_branches["users"], items, "toy", "valid")


def test_a_user_listed_twice_is_named(two_branches) -> None:
    exports = dict(two_branches["exports"])
    exports["linrec"] = pd.concat([exports["linrec"], exports["linrec"].iloc[[1]]])
    with pytest.raises(HybridrecError, match=r"'linrec' lists users twice: \['u2'\]"):
        align_branches(exports, two_branches["users"], two_branches["items"], "toy", "valid")


def test_target_ranks() -> None:
    lists = np.array([[[5, 6, 7], [7, 5, PAD]], [[1, 2, 3], [4, 5, 6]]])
    assert target_ranks(lists, np.array([7, 9])).tolist() == [[3, 1], [4, 4]]
    assert target_ranks(lists[:, 0], np.array([6, 1])).tolist() == [2, 1]


def test_flatten_list_column_reads_object_and_arrow_columns() -> None:
    rows = [[3, 1], [], [2]]
    objects = pd.Series([np.asarray(r, dtype=np.int32) for r in rows])
    arrow = pd.Series(rows, dtype=pd.ArrowDtype(pa.list_(pa.int32())))
    for column in (objects, arrow):
        values, offsets = flatten_list_column(column)
        assert values.tolist() == [3, 1, 2] and offsets.tolist() == [0, 2, 2, 3]


def test_align_sequences_orders_by_the_given_users() -> None:
    split = pd.DataFrame({"user": np.array([1, 2, 3], dtype=np.int32),
                          "items": [np.array([7, 7]), np.array([8]), np.array([9, 9, 9])]})
    users = _mapping("user", [10, 20, 30], [1, 2, 3])
    items, offsets = align_sequences(np.array([30, 10]), split, users)
    assert items.tolist() == [9, 9, 9, 7, 7] and offsets.tolist() == [0, 3, 5]
    with pytest.raises(HybridrecError, match=r"no input sequence for users \[40\]"):
        align_sequences(np.array([40]), split, users, "toy", "test")


def test_the_align_job_writes_the_aligned_table_without_padded_arrays(two_branches) -> None:
    """join_branches + joined_table (the job's path) give aligned_table's exact table, for
    string ids in a branch's own user order and for integer ids numbered 1..n in order."""
    from hybridrec.hybrid.align import join_branches
    from hybridrec.hybrid.aligned_file import aligned_table, joined_table

    args = (two_branches["exports"], two_branches["users"], two_branches["items"], "toy", "v")
    assert joined_table(join_branches(*args)).equals(aligned_table(align_branches(*args)))
    items = _mapping("item", [10, 20, 30, 40, 50, 60], [1, 2, 3, 4, 5, 6])
    users = _mapping("user", [7, 8, 9], [1, 2, 3])
    exports = {"linrec": _export([1, 2, 3], [[1, 2, 3], [4, 5, 6], [2, 3]], [1, 6, 5]),
               "fmlp": _export([1, 2, 3], [[6, 5, 4], [3, 1], [1, 2, 3]], [1, 6, 5])}
    args = (exports, {"linrec": users, "fmlp": users}, {"linrec": items, "fmlp": items})
    table = joined_table(join_branches(*args))
    assert table.equals(aligned_table(align_branches(*args)))
    assert table.column("fmlp_items").to_pylist() == [[60, 50, 40], [30, 10], [10, 20, 30]]


def test_pad_lists_full_and_ragged() -> None:
    from hybridrec.hybrid.align import pad_lists

    items, scores = np.arange(6), -np.arange(6, dtype=np.float64)
    full = pad_lists(items, scores, np.array([0, 3, 6]), 3)  # every list full (no index arrays)
    np.testing.assert_array_equal(full[0], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(full[1], [[0, -1, -2], [-3, -4, -5]])
    ragged = pad_lists(items, scores, np.array([0, 2, 6]), 4)
    np.testing.assert_array_equal(ragged[0], [[0, 1, PAD, PAD], [2, 3, 4, 5]])
    np.testing.assert_array_equal(ragged[1][0, 2:], [np.nan, np.nan])
