"""Training samples gathered by vectorised tensor indexing from flat per-user item arrays.

Every user's chronological training items sit in one flat tensor with CSR-style offsets. A sample
is a pair ``(start, end)`` of flat positions: ``start`` is the user's first item, ``end`` is one
past the last item of the sample's window. A batch of samples is a ``(B, N + 1)`` window matrix
``end - (N + 1) + arange(N + 1)`` whose positions before ``start`` become the 0 padding; the input
is its first ``N`` columns (left-padded, most recent item last) and the targets come from its
last column (``prefix``) or from the window shifted by one (``causal``).

Objectives:

- ``prefix`` (all three papers): every prefix of a user's training part is a sample: input = at
  most ``max_len`` items before position ``t``, target = the item at ``t``, for ``t`` from 1 to
  ``len - 1`` (the first item has no input). Departs from the official FMLP-Rec loader, which keeps
  only the prefixes of the last ``max_len`` training items and adds one with an empty input.
- ``causal``: one sample per window of ``max_len + 1`` items, long sequences tiled into
  consecutive windows anchored at the most recent item (targets of consecutive windows do not
  overlap); input = ``window[:-1]``, targets = ``window[1:]`` at every position, padding target 0
  ignored.

Negatives (the FMLP-Rec BCE objective) are drawn uniformly from the items not in the user's whole
training sequence, by vectorised rejection sampling. The official loader excludes only the items
of the sample's own prefix; excluding the whole training sequence is the brief's choice.
All randomness comes from a caller-owned ``torch.Generator`` (CPU), so an epoch is reproducible
from the generator's state alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

OBJECTIVES: tuple[str, ...] = ("prefix", "causal")


@dataclass(frozen=True)
class Sequences:
    """Chronological per-user item sequences as a flat tensor plus offsets (CSR layout).

    ``items[offsets[u]:offsets[u + 1]]`` are user row ``u``'s items (internal ids ``1..num_items``).
    Both tensors are ``int64`` on the CPU.
    """

    items: torch.Tensor  # (T,) int64
    offsets: torch.Tensor  # (U + 1,) int64
    num_items: int

    def __post_init__(self) -> None:
        if self.items.dtype != torch.int64 or self.offsets.dtype != torch.int64:
            raise TypeError("Sequences.items and .offsets must be int64 tensors")
        if self.items.dim() != 1 or self.offsets.dim() != 1 or self.offsets.numel() < 1:
            raise ValueError("Sequences.items and .offsets must be 1-D, offsets non-empty")
        if int(self.offsets[0]) != 0 or int(self.offsets[-1]) != self.items.numel():
            raise ValueError("Sequences.offsets must start at 0 and end at len(items)")
        if bool((self.offsets[1:] < self.offsets[:-1]).any()):
            raise ValueError("Sequences.offsets must be non-decreasing")
        if self.items.numel() and (
            int(self.items.min()) < 1 or int(self.items.max()) > self.num_items
        ):
            raise ValueError(f"item ids must lie in 1..{self.num_items} (0 is padding)")

    @classmethod
    def from_lists(cls, sequences: Sequence[Sequence[int]], num_items: int | None = None
                   ) -> Sequences:
        """Build from Python lists (tests, small data); ``num_items`` defaults to the largest id."""
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
        offsets = torch.zeros(len(sequences) + 1, dtype=torch.int64)
        offsets[1:] = torch.cumsum(lengths, 0)
        flat = [int(i) for s in sequences for i in s]
        items = torch.tensor(flat, dtype=torch.int64)
        if num_items is None:
            num_items = max(flat, default=0)
        return cls(items, offsets, int(num_items))

    @classmethod
    def from_arrow(cls, column: pa.Array | pa.ChunkedArray, num_items: int) -> Sequences:
        """Build from an Arrow ``list<int>`` column (e.g. ``split/train.parquet``'s ``items``)."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if column.null_count:
            raise ValueError("the items column must not contain nulls")
        offsets = column.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
        offsets = offsets - offsets[0]  # a sliced array's offsets need not start at 0
        return cls(torch.from_numpy(values), torch.from_numpy(offsets), int(num_items))

    @property
    def num_users(self) -> int:
        return self.offsets.numel() - 1

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def fingerprint(self) -> str:
        """SHA-256 over ids, offsets and catalogue size: identifies the data in a checkpoint."""
        digest = hashlib.sha256()
        digest.update(str(self.num_items).encode())
        digest.update(self.offsets.numpy().tobytes())
        digest.update(self.items.numpy().tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class SampleIndex:
    """One row per sample: flat ``start`` of its user, exclusive window ``end``, user row."""

    start: torch.Tensor  # (S,) int64
    end: torch.Tensor  # (S,) int64
    user: torch.Tensor  # (S,) int64

    def __len__(self) -> int:
        return self.start.numel()


def prefix_samples(seqs: Sequences) -> SampleIndex:
    """Every prefix target ``t = 1..len-1`` of every user: window end ``= start + t + 1``."""
    starts = seqs.offsets[:-1]
    counts = (seqs.lengths - 1).clamp_min(0)  # (U,) samples per user
    user = torch.repeat_interleave(torch.arange(seqs.num_users), counts)  # (S,)
    first = torch.cumsum(counts, 0) - counts  # (U,) first sample row of each user
    rank = torch.arange(user.numel()) - first[user]  # (S,) 0..count-1 within the user
    start = starts[user]
    end = start + rank + 2  # target at start + rank + 1
    return SampleIndex(start, end, user)


def causal_samples(seqs: Sequences, max_len: int) -> SampleIndex:
    """Windows of ``max_len + 1`` items tiled back from each user's last item.

    Window ``k`` ends (exclusive) at ``user_end - k * max_len``; a user of length ``L`` gives
    ``ceil((L - 1) / max_len)`` windows whose targets cover positions ``1..L-1`` exactly once.
    """
    if max_len < 1:
        raise ValueError("max_len must be >= 1")
    counts = (seqs.lengths - 1).clamp_min(0)
    windows = (counts + max_len - 1) // max_len  # (U,)
    user = torch.repeat_interleave(torch.arange(seqs.num_users), windows)  # (S,)
    first = torch.cumsum(windows, 0) - windows
    k = torch.arange(user.numel()) - first[user]  # window number counted from the end
    start = seqs.offsets[:-1][user]
    end = seqs.offsets[1:][user] - k * max_len
    return SampleIndex(start, end, user)


def gather_windows(flat: torch.Tensor, start: torch.Tensor, end: torch.Tensor, width: int
                   ) -> torch.Tensor:
    """``(B, width)`` matrix of ``flat[end - width : end]`` per row, positions ``< start`` -> 0."""
    idx = end.unsqueeze(1) - width + torch.arange(width, device=flat.device)  # (B, width)
    inside = idx >= start.unsqueeze(1)
    values = flat[idx.clamp_min(0)]  # (B, width)
    return torch.where(inside, values, torch.zeros((), dtype=flat.dtype, device=flat.device))


class NegativeSampler:
    """Uniform negatives from the items absent from each user's sequence, by rejection.

    Membership is tested with one ``searchsorted`` over the sorted keys ``user * (I + 1) + item``
    of every (user, item) pair; each round redraws only the candidates that hit the user's items.
    """

    def __init__(self, seqs: Sequences) -> None:
        self.num_items = seqs.num_items
        self._stride = seqs.num_items + 1
        user = torch.repeat_interleave(torch.arange(seqs.num_users), seqs.lengths)
        self._keys = torch.unique(user * self._stride + seqs.items)  # sorted, (P,)
        distinct = torch.bincount(self._keys // self._stride, minlength=seqs.num_users)
        full = torch.nonzero(distinct >= seqs.num_items).flatten()
        self._full_users = set(full.tolist())

    @property
    def users_without_negatives(self) -> int:
        """How many users' sequences cover the whole catalogue (no negative exists for them)."""
        return len(self._full_users)

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Boolean tensor: is ``items[i]`` in the sequence of user row ``users[i]``."""
        query = users * self._stride + items
        if self._keys.numel() == 0:
            return torch.zeros_like(query, dtype=torch.bool)
        pos = torch.searchsorted(self._keys, query).clamp_max(self._keys.numel() - 1)
        return self._keys[pos] == query

    def sample(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One negative per entry of ``users`` (any shape), drawn with ``generator``."""
        if self._full_users and bool(
            torch.isin(users, torch.tensor(sorted(self._full_users))).any()
        ):
            raise ValueError("a user's sequence covers the whole catalogue: no negative exists")
        flat_users = users.reshape(-1)
        draws = torch.randint(1, self.num_items + 1, flat_users.shape, generator=generator)
        todo = torch.nonzero(self.contains(flat_users, draws)).flatten()
        while todo.numel():
            redraw = torch.randint(1, self.num_items + 1, todo.shape, generator=generator)
            draws[todo] = redraw
            todo = todo[self.contains(flat_users[todo], redraw)]
        return draws.reshape(users.shape)


@dataclass(frozen=True)
class Batch:
    """``inputs`` (B, N) left-padded; ``targets`` (B,) for ``prefix`` or (B, N) for ``causal`` with
    0 where there is no target; ``negatives`` the same shape as ``targets`` (BCE) or ``None``."""

    inputs: torch.Tensor
    targets: torch.Tensor
    negatives: torch.Tensor | None

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        negatives = (None if self.negatives is None
                     else self.negatives.to(device, non_blocking=non_blocking))
        return Batch(self.inputs.to(device, non_blocking=non_blocking),
                     self.targets.to(device, non_blocking=non_blocking), negatives)

    def __len__(self) -> int:
        return self.inputs.shape[0]


class TrainingBatches:
    """Shuffled mini-batches of one objective over :class:`Sequences` (all work on the CPU).

    Each epoch draws one permutation and, with ``negatives=True``, every sample's negatives in one
    vectorised call, both from the given generator (in that order).
    """

    def __init__(self, seqs: Sequences, objective: str, max_len: int, negatives: bool = False
                 ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.seqs = seqs
        self.objective = objective
        self.max_len = int(max_len)
        self.samples = (prefix_samples(seqs) if objective == "prefix"
                        else causal_samples(seqs, self.max_len))
        self.negative_sampler = NegativeSampler(seqs) if negatives else None

    def __len__(self) -> int:
        return len(self.samples)

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def gather(self, rows: torch.Tensor, negatives: torch.Tensor | None = None) -> Batch:
        """The batch of sample ``rows`` (with the negatives already drawn for them, if any)."""
        window = gather_windows(self.seqs.items, self.samples.start[rows],
                                self.samples.end[rows], self.max_len + 1)  # (B, N + 1)
        inputs = window[:, :-1]  # (B, N)
        if self.objective == "prefix":
            targets = window[:, -1]  # (B,)
        else:
            targets = window[:, 1:] * (inputs != 0)  # (B, N); no target after a padded input
            if negatives is not None:
                negatives = negatives * (targets != 0)
        return Batch(inputs, targets, negatives)

    def draw_negatives(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Negatives for sample ``rows``: shape (S,) for ``prefix``, (S, N) for ``causal``."""
        if self.negative_sampler is None:
            raise ValueError("TrainingBatches was built without negatives")
        users = self.samples.user[rows]
        if self.objective == "causal":
            users = users.unsqueeze(1).expand(-1, self.max_len)
        return self.negative_sampler.sample(users, generator)

    def epoch(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Yield the epoch's batches in a fresh random order (last batch may be smaller)."""
        order = torch.randperm(len(self), generator=generator)
        negatives = (self.draw_negatives(order, generator)
                     if self.negative_sampler is not None else None)
        for lo in range(0, len(self), batch_size):
            rows = order[lo:lo + batch_size]
            yield self.gather(rows, None if negatives is None else negatives[lo:lo + batch_size])
