"""The demo generator: deterministic, contract-shaped, long-tailed, and sequentially learnable."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hybridrec.data.demo import _SeenItems, generate_demo


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return generate_demo(seed=7)


def sequences(frame: pd.DataFrame) -> list[np.ndarray]:
    return [group.to_numpy() for _, group in frame.groupby("user", sort=True)["item"]]


def most_frequent_successor(seqs: list[np.ndarray], n_items: int) -> np.ndarray:
    """First-order Markov table: ``table[item]`` is its most frequent successor (0: none)."""
    pairs = pd.DataFrame({"item": np.concatenate([s[:-1] for s in seqs]),
                          "next": np.concatenate([s[1:] for s in seqs])})
    counts = pairs.value_counts().reset_index(name="n")
    ranked = counts.sort_values(["item", "n", "next"], ascending=[True, False, True])
    best = ranked.drop_duplicates("item")
    table = np.zeros(n_items + 1, dtype=np.int64)
    table[best["item"].to_numpy()] = best["next"].to_numpy()
    return table


def lag_hit_rates(seqs: list[np.ndarray], successor: np.ndarray, max_lag: int) -> np.ndarray:
    """Per user and lag L: share of steps whose item is the successor of the item L steps back."""
    rates = np.full((len(seqs), max_lag), np.nan)
    for row, seq in enumerate(seqs):
        for lag in range(1, min(max_lag, len(seq) - 1) + 1):
            rates[row, lag - 1] = np.mean(successor[seq[:-lag]] == seq[lag:])
    return rates


def test_deterministic_in_seed() -> None:
    small: dict[str, Any] = {"n_users": 100, "n_items": 80, "n_topics": 8}
    pd.testing.assert_frame_equal(generate_demo(3, **small), generate_demo(3, **small))
    assert not generate_demo(3, **small).equals(generate_demo(4, **small))


def interactions_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of the interactions' values, column by column (independent of pandas' hashing)."""
    digest = hashlib.sha256()
    for column in ("user", "item", "timestamp"):
        digest.update(frame[column].to_numpy(dtype=np.int64).tobytes())
    digest.update(frame["rating"].to_numpy(dtype=np.float64, na_value=np.nan).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize(("settings", "expected"), [
    ({"seed": 7}, "f912cf2f0f9378d062cbdce4c350e00089b32488d0d38880596e9fb29caf472e"),
    ({"seed": 5, "n_users": 3001, "n_items": 999, "n_topics": 30, "max_length": 300},
     "cb66dfeb6a827f8bd2c4e34ea3448dc1406dd0451421511f49605bfa058abc97"),
])
def test_output_is_pinned(settings: dict[str, Any], expected: str) -> None:
    """The demo's interactions, bit for bit as the users x items version wrote them (digests
    of commit d8d4310's generator): the hash sets and the blockwise timestamps changed memory,
    not the data, so the demo's dataset files and every result built on them stay the same."""
    assert interactions_digest(generate_demo(**settings)) == expected


def test_seen_items_agree_with_python_sets() -> None:
    rng = np.random.default_rng(0)
    n_users, steps, n_items = 300, 40, 50  # few items: many repeats and long probe chains
    seen, reference = _SeenItems(n_users, steps), [set() for _ in range(n_users)]
    users = np.arange(n_users)
    for _ in range(steps):
        items = rng.integers(0, n_items, n_users)
        expected = [int(i) in s for i, s in zip(items, reference, strict=True)]
        assert seen.contains(users, items).tolist() == expected
        subset = np.flatnonzero(rng.random(n_users) < 0.5)
        assert seen.contains(subset, items[subset]).tolist() == [expected[u] for u in subset]
        seen.add(users, items)
        for s, i in zip(reference, items, strict=True):
            s.add(int(i))


def test_contract_shape_and_dtypes(demo: pd.DataFrame) -> None:
    assert list(demo.columns) == ["user", "item", "timestamp", "rating"]
    assert demo.dtypes.astype(str).tolist() == ["int64", "int64", "Int64", "Float64"]
    assert demo["rating"].isna().all() and demo["timestamp"].notna().all()
    assert sorted(demo["user"].unique()) == list(range(1, 1001))
    assert demo["item"].between(1, 500).all() and demo["item"].nunique() > 450
    assert 20_000 <= len(demo) <= 30_000


def test_sizes_are_parameters() -> None:
    frame = generate_demo(1, n_users=50, n_items=40, n_topics=4, mean_length=10, min_length=3,
                          max_length=12)
    lengths = frame.groupby("user").size()
    assert len(lengths) == 50 and lengths.between(3, 12).all()
    assert frame["item"].max() <= 40


def test_timestamps_strictly_increase_within_each_user(demo: pd.DataFrame) -> None:
    steps = demo.groupby("user")["timestamp"].diff().dropna()
    assert (steps > 0).all()


def test_long_tailed_lengths_and_popularity(demo: pd.DataFrame) -> None:
    lengths = demo.groupby("user").size()
    assert lengths.min() >= 5 and lengths.max() <= 200
    assert 20 <= lengths.mean() <= 30 and lengths.median() < lengths.mean()
    assert lengths.max() > 4 * lengths.median()
    counts = demo["item"].value_counts()
    top_share = counts.iloc[: 500 // 10].sum() / len(demo)
    assert top_share > 0.4, f"top 10% of items carry only {top_share:.0%} of interactions"


def test_markov_predictor_beats_popularity(demo: pd.DataFrame) -> None:
    seqs = sequences(demo)
    train, test = seqs[: len(seqs) // 2], seqs[len(seqs) // 2:]
    successor = most_frequent_successor(train, n_items=500)
    most_popular = pd.Series(np.concatenate(train)).value_counts().index[0]
    last = np.array([s[-1] for s in test])
    markov = np.mean(successor[[s[-2] for s in test]] == last)
    popularity = np.mean(last == most_popular)
    assert markov > popularity + 0.2 and markov > 3 * popularity, (markov, popularity)


def test_periodic_users_exist_and_vanish_without_them() -> None:
    def periodic_users(frame: pd.DataFrame) -> np.ndarray:
        """Best lag of each user whose steps follow the chain L > 1 steps back at least half
        the time; Markov users peak at L = 1."""
        seqs = sequences(frame)
        rates = lag_hit_rates(seqs, most_frequent_successor(seqs, n_items=200), max_lag=8)
        best = np.nanargmax(np.nan_to_num(rates, nan=-1.0), axis=1) + 1
        strong = np.nanmax(rates, axis=1) >= 0.5
        return best[strong & (best > 1)]

    small: dict[str, Any] = {"n_users": 400, "n_items": 200, "n_topics": 10}
    found = periodic_users(generate_demo(11, periodic_share=0.4, **small))
    assert len(found) > 0.2 * 400, "too few users with a periodic pattern"
    assert set(found) >= {3, 4, 5, 6} and np.isin(found, [3, 4, 5, 6]).mean() > 0.9
    assert len(periodic_users(generate_demo(11, periodic_share=0.0, **small))) < 0.02 * 400


@pytest.mark.parametrize("bad", [{"n_items": 10, "n_topics": 8}, {"min_length": 9,
                                                                   "max_length": 8},
                                 {"periods": (1,)}, {"follow_prob": 0.9, "topic_prob": 0.2}])
def test_invalid_parameters(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate_demo(0, **bad)
