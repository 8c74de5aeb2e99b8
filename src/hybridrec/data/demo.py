"""A small synthetic dataset with learnable sequential structure, for the offline demo DAG.

Items belong to latent topics; within a topic they form a cyclic chain ordered by popularity.
Two kinds of users walk these chains:

- *Markov* users mostly move to the chain successor of their previous item (first-order
  structure, which any sequence model can learn);
- *periodic* users cycle through a personal list of ``p`` topics: step ``t`` continues the chain
  of step ``t - p``, or at least stays in its topic. Their topic sequence is periodic with
  period ``p``, a pattern that a frequency-domain filter (FMLP-Rec) can pick up while the
  previous item alone says little about the next.

The remaining steps are draws from a Zipf popularity law, which also gives the long tail of item
popularity. Like the real datasets, a user rarely sees an item twice (a repeat is redrawn a few
times first). Sequence lengths are log-normal: long-tailed, clipped to ``[min, max]_length``.

Item text (:func:`generate_demo_item_text`) names each item by words of its topic, so that a
text-aware model can tell items of one topic from the others before it has seen them in use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

_EPOCH_2020 = 1_577_836_800  # 2020-01-01T00:00:00Z
_YEAR = 365 * 86_400
_MEAN_GAP = 2 * 86_400  # mean seconds between a user's consecutive interactions
_TEXT_STREAM = 0x7E47  # second seed word of the text's generator: interactions are unchanged

# Product nouns for the topics' vocabularies, and descriptors shared by every topic.
_NOUNS = (
    "tent", "lantern", "sleeping bag", "compass", "kayak", "paddle", "lipstick", "mascara",
    "eyeliner", "nail polish", "perfume", "moisturizer", "guitar", "violin", "drum", "piano",
    "microphone", "amplifier", "novel", "atlas", "cookbook", "poetry", "comic", "biography",
    "skillet", "kettle", "blender", "teapot", "spatula", "cutting board", "sneaker", "boot",
    "sandal", "loafer", "slipper", "scarf", "drill", "hammer", "wrench", "screwdriver", "saw",
    "toolbox", "puzzle", "doll", "kite", "yo-yo", "board game", "teddy bear", "laptop",
    "keyboard", "monitor", "router", "webcam", "headphones", "tennis racket", "football",
    "basketball", "golf club", "skateboard", "helmet", "vase", "candle", "rug", "lamp",
    "curtain", "pillow", "watch", "bracelet", "necklace", "ring", "earrings", "brooch",
    "shampoo", "conditioner", "hair dryer", "comb", "razor", "toothbrush", "bicycle", "pump",
    "saddle", "bell", "chain lock", "water bottle", "camera", "tripod", "lens", "flash",
)
_DESCRIPTORS = (
    "classic", "compact", "deluxe", "vintage", "portable", "premium", "lightweight", "organic",
    "wireless", "handmade", "waterproof", "professional", "mini", "large", "red", "blue",
    "black", "silver", "travel", "everyday", "limited edition", "essential", "soft", "bold",
)


@dataclass(frozen=True)
class _Catalogue:
    """Latent item structure; item ``i`` here is id ``i + 1`` in the output."""

    popularity: np.ndarray  # probability of each item under a popularity draw
    topic: np.ndarray  # topic of each item
    successor: np.ndarray  # next item in its topic's chain
    topic_cdf: np.ndarray  # per-topic popularity CDF, offset by the topic index (see draw_in_topic)
    by_topic: np.ndarray  # items sorted by (topic, descending popularity), aligned with topic_cdf

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(len(self.popularity), size=size, p=self.popularity)

    def draw_in_topic(self, rng: np.random.Generator, topics: np.ndarray) -> np.ndarray:
        """One popularity-weighted item from each given topic, without a per-topic loop.

        Topic ``k``'s CDF occupies ``(k, k + 1]`` of ``topic_cdf``, so ``k + U(0, 1)`` lands in
        topic ``k``'s block.
        """
        position = np.searchsorted(self.topic_cdf, topics + rng.random(len(topics)), side="right")
        return self.by_topic[position]


def generate_demo(seed: int, n_users: int = 1000, n_items: int = 500, *, n_topics: int = 25,
                  mean_length: float = 25.0, min_length: int = 5, max_length: int = 200,
                  periodic_share: float = 0.4, periods: Sequence[int] = (3, 4, 5, 6),
                  follow_prob: float = 0.7, topic_prob: float = 0.15,
                  zipf_exponent: float = 1.2) -> pd.DataFrame:
    """Raw interactions (int ids from 1, increasing timestamps per user, no ratings).

    Deterministic in ``seed``. ``follow_prob`` is the chance that a step continues a chain;
    periodic users otherwise stay in the anchor's topic with chance ``topic_prob``; every
    remaining step is a popularity draw.
    """
    _validate(n_users, n_items, n_topics, min_length, max_length, periods, follow_prob,
              topic_prob)
    rng = np.random.default_rng(seed)
    catalogue = _catalogue(rng, n_items, n_topics, zipf_exponent)
    lengths = _lengths(rng, n_users, mean_length, min_length, max_length)
    period = np.where(rng.random(n_users) < periodic_share, rng.choice(periods, n_users), 0)
    walk = _walk(rng, catalogue, period, int(lengths.max()), follow_prob, topic_prob)
    observed = np.arange(walk.shape[0])[:, None] < lengths  # (steps, users)
    items = walk.T[observed.T].astype(np.int64) + 1  # user by user, in time order
    del walk, observed
    times = _timestamps(rng, lengths)
    return pd.DataFrame({
        "user": np.repeat(np.arange(1, n_users + 1, dtype=np.int64), lengths),
        "item": items,
        "timestamp": pd.array(times, dtype="Int64"),
        "rating": pd.array(np.full(int(lengths.sum()), np.nan), dtype="Float64"),
    })


def generate_demo_item_text(seed: int, n_items: int = 500, *, n_topics: int = 25,
                            zipf_exponent: float = 1.2, words_per_topic: int = 3,
                            noise_share: float = 0.1, missing_share: float = 0.02) -> pd.DataFrame:
    """Item text for ``generate_demo(seed, n_items=n_items)`` (same topics), in the contract of
    :mod:`hybridrec.data.item_text` (``item``, ``text``).

    Each topic owns ``words_per_topic`` product nouns; an item's text is a shared descriptor and
    two of its topic's nouns, plus, for a ``noise_share`` of the items, a noun of a random topic.
    A ``missing_share`` of the items has no row, as real catalogues have items without text.
    Deterministic in ``seed``, from a generator of its own: the interactions do not change.
    """
    if n_items < 2 * n_topics or not 2 <= words_per_topic:
        raise ValueError("need n_items >= 2 * n_topics and words_per_topic >= 2")
    catalogue = _catalogue(np.random.default_rng(seed), n_items, n_topics, zipf_exponent)
    rng = np.random.default_rng([seed, _TEXT_STREAM])
    vocabulary = np.array(_NOUNS, dtype=object)
    replace = n_topics * words_per_topic > len(vocabulary)
    topic_words = rng.choice(vocabulary, (n_topics, words_per_topic), replace=replace)
    pick = np.argsort(rng.random((n_items, words_per_topic)), axis=1)[:, :2]  # two distinct
    words = topic_words[catalogue.topic[:, None], pick]  # (items, 2)
    descriptor = rng.choice(np.array(_DESCRIPTORS, dtype=object), n_items)
    stray = rng.choice(vocabulary, n_items)
    noisy = rng.random(n_items) < noise_share
    texts = [f"{d} {a} {b}" + (f" {x}" if n else "")
             for d, (a, b), x, n in zip(descriptor, words, stray, noisy, strict=True)]
    keep = rng.random(n_items) >= missing_share
    return pd.DataFrame({
        "item": np.arange(1, n_items + 1, dtype=np.int64)[keep],
        "text": pd.array(np.array(texts, dtype=object)[keep], dtype="string"),
    })


def _validate(n_users: int, n_items: int, n_topics: int, min_length: int, max_length: int,
              periods: Sequence[int], follow_prob: float, topic_prob: float) -> None:
    if n_users < 1 or n_topics < 1 or n_items < 2 * n_topics:
        raise ValueError("need n_users >= 1 and n_items >= 2 * n_topics >= 2")
    if not 1 <= min_length <= max_length:
        raise ValueError("need 1 <= min_length <= max_length")
    if not periods or min(periods) < 2:
        raise ValueError("periods must be a non-empty list of integers >= 2")
    if not (0 <= follow_prob and 0 <= topic_prob and follow_prob + topic_prob <= 1):
        raise ValueError("need follow_prob, topic_prob >= 0 and follow_prob + topic_prob <= 1")


def _catalogue(rng: np.random.Generator, n_items: int, n_topics: int,
               zipf_exponent: float) -> _Catalogue:
    rank = rng.permutation(n_items)  # item -> popularity rank (0 = most popular)
    weight = 1.0 / (rank + 1.0) ** zipf_exponent
    topic = rng.permutation(np.arange(n_items) % n_topics)
    by_topic = np.lexsort((rank, topic))  # by topic, then most popular first
    sorted_topic = topic[by_topic]
    # each topic's chain runs down its popularity order and wraps around to the top
    chain = pd.Series(by_topic).groupby(sorted_topic)
    successor = np.empty(n_items, dtype=np.int64)
    successor[by_topic] = chain.shift(-1).fillna(chain.transform("first")).to_numpy(np.int64)
    weights = pd.Series(weight[by_topic]).groupby(sorted_topic)
    topic_cdf = sorted_topic + (weights.cumsum() / weights.transform("sum")).to_numpy()
    return _Catalogue(weight / weight.sum(), topic, successor, topic_cdf, by_topic)


def _lengths(rng: np.random.Generator, n_users: int, mean_length: float, min_length: int,
             max_length: int, sigma: float = 0.8) -> np.ndarray:
    """Log-normal lengths whose unclipped mean is ``mean_length``."""
    raw = rng.lognormal(np.log(mean_length) - sigma**2 / 2, sigma, n_users)
    return np.clip(np.rint(raw), min_length, max_length).astype(np.int64)


def _timestamps(rng: np.random.Generator, lengths: np.ndarray,
                chunk_cells: int = 1 << 22) -> np.ndarray:
    """Each user's interaction times, flat, user by user: a random start in 2020 plus the
    running sum of exponential gaps.

    A gap is drawn for every step of the longest sequence and every user (a users x steps
    block, row by row), the start offsets after them; only the observed steps are kept. Drawn
    in blocks of users, which reads the generator's stream in the same order as one block.
    """
    steps = int(lengths.max())
    per_block = max(1, chunk_cells // steps)
    kept = []
    for first in range(0, len(lengths), per_block):
        block = lengths[first:first + per_block]
        gaps = 1 + np.floor(rng.exponential(_MEAN_GAP, (len(block), steps))).astype(np.int64)
        running = np.cumsum(gaps, axis=1)
        kept.append(running[np.arange(steps) < block[:, None]])
    start = _EPOCH_2020 + rng.integers(0, _YEAR, (len(lengths), 1))[:, 0]
    return np.repeat(start, lengths) + np.concatenate(kept)


class _SeenItems:
    """The items each user has seen: one open-addressing hash set per user.

    Row ``u`` of a (users, slots) int32 table holds user ``u``'s items, ``-1`` in empty slots;
    memory is users x slots x 4 bytes, with ``slots`` the power of two at least 1.25 times the
    most items a user can see, instead of a users x items matrix.
    """

    def __init__(self, n_users: int, capacity: int) -> None:
        self._bits = max(1, int(np.ceil(np.log2(1.25 * capacity + 1))))
        self._table = np.full((n_users, 1 << self._bits), -1, dtype=np.int32)

    def _slots(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The slot of each (user, item): where the item is, or the empty slot it would take."""
        mask = (1 << self._bits) - 1
        # Fibonacci hashing: the top bits of item * 2^32 / golden ratio (mod 2^32)
        slot = ((items.astype(np.uint64) * 2654435769) & 0xFFFFFFFF) >> (32 - self._bits)
        slot = slot.astype(np.int64)
        pending = np.arange(len(users))
        probe = 0
        while pending.size:  # triangular probing: offsets 1, 3, 6, ... visit every slot
            held = self._table[users[pending], slot[pending]]
            pending = pending[(held != items[pending]) & (held != -1)]
            probe += 1
            slot[pending] = (slot[pending] + probe) & mask
        return slot

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n,) whether each user (distinct) has seen the item beside it."""
        return self._table[users, self._slots(users, items)] == items

    def add(self, users: np.ndarray, items: np.ndarray) -> None:
        """Mark one item per user (distinct users) as seen."""
        self._table[users, self._slots(users, items)] = items


def _walk(rng: np.random.Generator, catalogue: _Catalogue, period: np.ndarray, steps: int,
          follow_prob: float, topic_prob: float) -> np.ndarray:
    """Item matrix (steps x users, int32), generated one step at a time for all users at once.

    The anchor of a step is the previous item for Markov users (``period == 0``) and the item one
    period back for periodic users; a periodic user's first ``p`` items are popularity draws.
    Steps are rows, so a step's items and its anchors are contiguous in memory.
    """
    n_users = len(period)
    users = np.arange(n_users)
    lag = np.maximum(period, 1)
    items = np.zeros((steps, n_users), dtype=np.int32)
    seen = _SeenItems(n_users, steps)
    for t in range(steps):
        draw = rng.random(n_users)
        anchored = t >= lag
        anchor = items[np.maximum(t - lag, 0), users]
        topical = anchored & (period > 0)
        follow = anchored & (draw < follow_prob)
        stay = topical & ~follow & (draw < follow_prob + topic_prob)
        choice = np.where(follow, catalogue.successor[anchor],
                          np.where(stay, catalogue.draw_in_topic(rng, catalogue.topic[anchor]),
                                   catalogue.draw(rng, n_users)))
        _avoid_repeats(rng, catalogue, choice, seen, np.where(topical, catalogue.topic[anchor], -1))
        items[t] = choice
        seen.add(users, choice)
    return items


def _avoid_repeats(rng: np.random.Generator, catalogue: _Catalogue, choice: np.ndarray,
                   seen: _SeenItems, topic: np.ndarray, tries: int = 5) -> None:
    """Redraw (in place) items a user has already seen, like the real data's one-off purchases.

    A redraw stays in ``topic`` where it is ``>= 0`` (periodic users keep their rhythm), else it
    is a popularity draw. After ``tries`` a repeat is kept: a long periodic user can exhaust a
    topic, which reads as re-consumption.
    """
    clash = np.arange(len(choice))
    for _ in range(tries):
        clash = clash[seen.contains(clash, choice[clash])]  # only a redrawn item can clash anew
        if clash.size == 0:
            return
        in_topic = topic[clash] >= 0
        redraw = catalogue.draw(rng, clash.size)
        redraw[in_topic] = catalogue.draw_in_topic(rng, topic[clash][in_topic])
        choice[clash] = redraw
