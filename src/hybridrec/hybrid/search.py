"""Random search over the gate's hyperparameters and the fusion noise (paper Section IV-D).

Data (paper Section IV-B): validation sequences where at least one branch has the target in its
top 10, split 90/10 stratified by the label. Each trial trains a gate on the 90 %, fuses the
held-out 10 % with Algorithm 1 and scores the fused lists; the best trial has the highest fused
MRR@10, then NDCG@10, then the lowest trial number (the paper selects on "validation MRR and
NDCG@10", not on loss).

Sharding: :func:`sample_trials` fixes every trial's parameters up front (Optuna's
``RandomSampler`` ignores finished trials, so asking them all first draws the same values as
asking one at a time); :func:`run_shard` trains and scores every ``n_shards``-th trial, all of a
shard's gates in one batched pass; :func:`gather` joins the shards and picks the best.

Randomness, all derived from one ``seed``: trial ``i``'s gate starts from :func:`trial_seed`
``(seed, i)``; every trial fuses with the same draws, ``numpy.random.default_rng([seed, 1])``,
so trials differ only by their parameters. Departure: the paper does not say how its trials drew
the fusion noise and steps; sharing one set of draws removes the luck of the draw from the
comparison of trials (fresh draws per trial would select partly on noise).

Storage: :func:`write_study` stores the finished search as an Optuna study in an SQLite file,
so ``optuna-dashboard sqlite:///results/hybrid/.../search/study.db`` browses it (the dashboard is
not a dependency). The study only records the search; the trials, their scores and the selection
are computed here exactly as without it.
"""

from __future__ import annotations

import datetime
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
)
from sklearn.model_selection import train_test_split

from hybridrec.cpu import limit_threads
from hybridrec.errors import HybridrecError
from hybridrec.hybrid.align import target_ranks
from hybridrec.hybrid.features import best_branch, eligible
from hybridrec.hybrid.fusion import draw_fusion_randomness, fuse_vectorised
from hybridrec.hybrid.gate import Gate, GateHyperparameters, train_gates
from hybridrec.hybrid.list_metrics import KEYS, per_user_list_metrics
from hybridrec.io import atomic_path
from hybridrec.plain import plain

PARAMETERS = ("lr", "hidden", "epochs", "pos_weight", "noise")
SELECTION = [KEYS[0], KEYS[1], "trial"]  # mrr@10, ndcg@10 (descending), trial (ascending)
_FUSION_STREAM = 1
# trials are stored without wall times (so equal searches give equal files): start = end = this
_NO_TIME = datetime.datetime(2000, 1, 1)


@dataclass(frozen=True)
class SearchSpace:
    """The paper's ranges; ``lr`` is sampled on a log scale."""

    lr: tuple[float, float] = (1e-5, 1e-1)
    hidden: tuple[int, ...] = (16, 32, 64, 128)
    epochs: tuple[int, ...] = (5, 15, 25, 50, 100, 250)
    pos_weight: tuple[float, float] = (0.25, 1.5)
    noise: tuple[float, float] = (0.0, 0.25)

    def distributions(self) -> dict[str, BaseDistribution]:
        return {
            "lr": FloatDistribution(*self.lr, log=True),
            "hidden": CategoricalDistribution(list(self.hidden)),
            "epochs": CategoricalDistribution(list(self.epochs)),
            "pos_weight": FloatDistribution(*self.pos_weight),
            "noise": FloatDistribution(*self.noise),
        }


@dataclass(frozen=True)
class GateData:
    """Rows for training or scoring gates: raw features and what fusion needs."""

    feature_names: tuple[str, ...]
    features: np.ndarray  # (n, F) raw
    best_branch: np.ndarray  # (n,) class of each row
    lists: np.ndarray  # (n, B, k) shared item ids
    target: np.ndarray  # (n,)

    def subset(self, rows: np.ndarray) -> GateData:
        return GateData(self.feature_names, self.features[rows], self.best_branch[rows],
                        self.lists[rows], self.target[rows])


def gate_training_data(features: pd.DataFrame, feature_names: Sequence[str], lists: np.ndarray,
                       target: np.ndarray, held_out: float = 0.1, seed: int = 0,
                       top_n: int = 10, where: str = "gate training data"
                       ) -> tuple[GateData, GateData]:
    """Eligible rows (a branch hits in its top ``top_n``), split stratified by best branch.

    For two branches stratifying by best branch is stratifying by the paper's label. The rows
    keep each branch's top ``top_n`` only: the search fuses the paper's top-10 lists, however
    deep the exports are. Too few rows of a class for the split raise one message naming
    ``where`` and the counts.
    """
    head = lists[..., :top_n]
    ranks = target_ranks(head, target)
    rows = np.flatnonzero(eligible(ranks, top_n))
    data = GateData(tuple(feature_names), features.loc[:, list(feature_names)].to_numpy(
        dtype=np.float64), best_branch(ranks), head, target).subset(rows)
    classes, sizes = np.unique(data.best_branch, return_counts=True)
    n_held_out = int(np.ceil(held_out * len(rows)))
    n_classes = len(classes)
    if (n_classes < 2 or (sizes < 2).any() or n_held_out < n_classes
            or len(rows) - n_held_out < n_classes):
        counts = dict(zip(classes.tolist(), sizes.tolist(), strict=True))
        if n_classes >= 2 and (sizes >= 2).all():
            low, high = n_classes / len(rows), 1 - n_classes / len(rows)
            advice = f"set hybrid.held_out (now {held_out:g}) between {low:.3g} and {high:.3g}"
        else:
            advice = "change hybrid.held_out"
        raise HybridrecError(
            f"{where}: {len(rows)} of {len(target)} users have the target in a branch's top "
            f"{top_n} (rows per best branch {counts}); a stratified {held_out:g} held-out split "
            f"needs at least two rows of each branch and one of each on either side. Train the "
            f"branches longer, use a protocol with more hits, or {advice}")
    train, test = train_test_split(np.arange(len(rows)), test_size=held_out,
                                   stratify=data.best_branch, random_state=seed)
    return data.subset(np.sort(train)), data.subset(np.sort(test))


def sample_trials(trials: int = 500, seed: int = 0,
                  space: SearchSpace | None = None) -> pd.DataFrame:
    """Every trial's parameters (columns ``trial`` and :data:`PARAMETERS`), deterministic."""
    optuna.logging.set_verbosity(logging.WARNING)
    distributions = (space or SearchSpace()).distributions()
    study = optuna.create_study(directions=["maximize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    rows = [{"trial": t.number, **t.params} for t in
            (study.ask(distributions) for _ in range(trials))]
    frame = pd.DataFrame(rows, columns=["trial", *PARAMETERS])
    return frame.astype({"trial": np.int64, "hidden": np.int64, "epochs": np.int64})


def trial_seed(seed: int, trial: int) -> int:
    """The seed of trial ``trial``'s gate initialisation."""
    return int(np.random.SeedSequence([seed, trial]).generate_state(1)[0])


def hyperparameters(row: pd.Series) -> GateHyperparameters:
    """The gate part of one trial row."""
    return GateHyperparameters(lr=float(row["lr"]), hidden=int(row["hidden"]),
                               epochs=int(row["epochs"]), pos_weight=float(row["pos_weight"]))


def run_shard(params: pd.DataFrame, shard_index: int, n_shards: int, train: GateData,
              held_out: GateData, seed: int, top_n: int = 10,
              threads: int = 1) -> tuple[pd.DataFrame, list[Gate]]:
    """Train and score the trials with ``trial % n_shards == shard_index``.

    Returns their parameters with ``mrr@10``, ``ndcg@10``, ``hr@10`` of the fused held-out lists
    and the mean and standard deviation of branch 0's weight (alpha) on the held-out rows, and
    the trained gates in the table's row order (the gates those scores came from).
    Runs on ``threads`` threads; run shards side by side for more.
    """
    if not 0 <= shard_index < n_shards:
        raise ValueError(f"shard_index must be in [0, {n_shards}), got {shard_index}")
    with limit_threads(threads):
        return _run_shard(params, shard_index, n_shards, train, held_out, seed, top_n)


def _run_shard(params: pd.DataFrame, shard_index: int, n_shards: int, train: GateData,
               held_out: GateData, seed: int, top_n: int) -> tuple[pd.DataFrame, list[Gate]]:
    shard = params[params["trial"] % n_shards == shard_index].reset_index(drop=True)
    n_branches = held_out.lists.shape[1]
    gates = train_gates(train.features, train.best_branch, n_branches,
                        [hyperparameters(row) for _, row in shard.iterrows()],
                        [trial_seed(seed, int(t)) for t in shard["trial"]], train.feature_names)
    draws = draw_fusion_randomness(len(held_out.target), n_branches, top_n,
                                   np.random.default_rng([seed, _FUSION_STREAM]))
    scores = []
    for gate, noise in zip(gates, shard["noise"], strict=True):
        weights = gate.branch_weights(held_out.features)
        fused = fuse_vectorised(held_out.lists, weights, draws, top_n, float(noise))
        metrics = {k: float(v.mean()) for k, v in
                   per_user_list_metrics(fused, held_out.target).items()}
        scores.append({**metrics, "alpha_mean": float(weights[:, 0].mean()),
                       "alpha_std": float(weights[:, 0].std())})
    table = pd.concat([shard, pd.DataFrame(scores, columns=[*KEYS, "alpha_mean", "alpha_std"])],
                      axis=1)
    return table, gates


def best_row(table: pd.DataFrame) -> int:
    """Position in ``table`` of the best trial (see the module docstring)."""
    ranked = table.reset_index(drop=True).sort_values(SELECTION, ascending=[False, False, True],
                                                      kind="stable")
    return int(ranked.index[0])


def gather(shards: Sequence[pd.DataFrame]) -> tuple[pd.DataFrame, pd.Series]:
    """All trials sorted by number, and the best one (see the module docstring)."""
    table = pd.concat(list(shards), ignore_index=True).sort_values("trial", kind="stable")
    duplicated = table["trial"][table["trial"].duplicated()]
    if len(duplicated):
        raise HybridrecError(f"trials scored by more than one shard: {duplicated.tolist()[:5]}")
    table = table.reset_index(drop=True)
    return table, table.iloc[best_row(table)]


def write_study(table: pd.DataFrame, path: str | Path, study_name: str,
                space: SearchSpace | None = None) -> None:
    """The finished search as an Optuna study in a new SQLite file at ``path`` (atomically).

    Values: held-out MRR@10 and NDCG@10 (both maximised); user attributes of each trial: its
    HR@10 and alpha statistics; of the study: the selected trial. Trial numbers are ours.
    Trials carry a fixed time stamp instead of wall times, so equal searches give equal files.
    """
    optuna.logging.set_verbosity(logging.WARNING)
    distributions = (space or SearchSpace()).distributions()
    extra = [column for column in ("hr@10", "alpha_mean", "alpha_std") if column in table]
    with atomic_path(path) as tmp:  # fsynced once, then renamed: no need to sync every insert
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{tmp}", engine_kwargs={"creator": lambda: _unsynced_sqlite(tmp)})
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    directions=["maximize", "maximize"])
        study.set_user_attr("selected_trial", int(table.iloc[best_row(table)]["trial"]))
        study.add_trials([
            optuna.trial.FrozenTrial(
                number=int(row["trial"]), trial_id=-1, state=optuna.trial.TrialState.COMPLETE,
                value=None, values=[float(row[KEYS[0]]), float(row[KEYS[1]])],
                datetime_start=_NO_TIME, datetime_complete=_NO_TIME,
                params={p: plain(row[p]) for p in PARAMETERS}, distributions=distributions,
                user_attrs={c: float(row[c]) for c in extra}, system_attrs={},
                intermediate_values={})
            for _, row in table.sort_values("trial").iterrows()])
        storage.engine.dispose()


def _unsynced_sqlite(path: Path) -> sqlite3.Connection:
    """An SQLite connection that neither syncs nor journals on disk (twice as fast to fill)."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA journal_mode=MEMORY")
    return connection
