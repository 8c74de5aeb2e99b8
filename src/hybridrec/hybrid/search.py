"""Random search over the gate's settings and the fusion noise (paper Section IV-D).

Data (paper Section IV-B): validation sequences where at least one branch has the target in its
top 10, split 90/10 stratified by the label class; the training part may then be rebalanced
(:func:`rebalance`, Section V-C). Each trial trains a gate on the training part, and on the
held-out part computes its loss and fuses with Algorithm 1 to score the fused lists.

Selection (:data:`SELECTIONS`, ``hybrid.selection``): ``val_loss``, the lowest held-out loss
(Section IV-D, l.372: "training the model to achieve the lowest validation loss"), or ``mrr``,
the highest fused MRR@10, then NDCG@10 (l.389, credited to the ML-1M result); ties go to the
lower trial number. The held-out loss that ranks trials is the plain log loss of the soft labels
(no ``pos_weight``, no focal term), the same for every trial and gate kind. Departure: the paper
does not say which loss it compared; its own criterion with the trial's ``pos_weight`` would
favour the smallest ``pos_weight`` whatever the gate learnt.

Search spaces (:data:`SEARCH_SPACES`, ``hybrid.gate``): the MLP's are the paper's (Section IV-D);
the tree gates (Section V-C, no ranges given) vary their capacity instead of the learning rate,
hidden size and epochs, and keep the paper's ``pos_weight`` and noise ranges.

Sharding: :func:`sample_trials` fixes every trial's parameters up front (Optuna's
``RandomSampler`` ignores finished trials, so asking them all first draws the same values as
asking one at a time); :func:`run_shard` trains and scores every ``n_shards``-th trial, all of a
shard's MLP gates in one batched pass; :func:`gather` joins the shards and picks the best trial
under each rule.

Randomness, all derived from one ``seed``: trial ``i``'s gate starts (and shuffles its batches,
or draws its trees) from :func:`trial_seed` ``(seed, i)``; every trial fuses with the same draws,
``numpy.random.default_rng([seed, 1])``, so trials differ only by their parameters. Departure:
the paper does not say how its trials drew the fusion noise and steps; sharing one set of draws
removes the luck of the draw from the comparison of trials (fresh draws per trial would select
partly on noise).

Storage: :func:`write_study` stores the finished search as an Optuna study in an SQLite file,
so ``optuna-dashboard sqlite:///results/hybrid/.../search/study.db`` browses it (the dashboard is
not a dependency). The study only records the search; the trials, their scores and the selection
are computed here exactly as without it.
"""

from __future__ import annotations

import datetime
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from sklearn.model_selection import train_test_split

from hybridrec.cpu import limit_threads
from hybridrec.errors import HybridrecError
from hybridrec.hybrid.align import target_ranks
from hybridrec.hybrid.features import branch_labels, eligible, label_classes
from hybridrec.hybrid.fusion import draw_fusion_randomness, fuse_vectorised
from hybridrec.hybrid.gate import (
    PAPER_TRAINING,
    GateHyperparameters,
    GateModel,
    GateTraining,
    train_gates,
)
from hybridrec.hybrid.list_metrics import KEYS, per_user_list_metrics
from hybridrec.hybrid.tree_gate import BOOSTING, FOREST, fit_tree_gate
from hybridrec.io import atomic_path
from hybridrec.plain import plain

MLP = "mlp"
VAL_LOSS = "val_loss"
SELECTIONS: dict[str, tuple[list[str], list[bool]]] = {
    VAL_LOSS: ([VAL_LOSS, "trial"], [True, True]),  # lowest held-out loss
    "mrr": ([KEYS[0], KEYS[1], "trial"], [False, False, True]),  # mrr@10, then ndcg@10
}
"""Each rule's sort: columns and ascending flags; the first row after sorting is the best."""
SCORES = [*KEYS, VAL_LOSS, "alpha_mean", "alpha_std"]
_FUSION_STREAM = 1
_REBALANCE_STREAM = 3
_LOG_FLOOR = 1e-15  # a tree may give a branch probability 0: its log loss is clipped there
# trials are stored without wall times (so equal searches give equal files): start = end = this
_NO_TIME = datetime.datetime(2000, 1, 1)


@dataclass(frozen=True)
class SearchSpace:
    """One gate kind's searched settings, then the paper's ``pos_weight`` and noise ranges."""

    gate: Mapping[str, BaseDistribution]
    pos_weight: tuple[float, float] = (0.25, 1.5)
    noise: tuple[float, float] = (0.0, 0.25)

    def distributions(self) -> dict[str, BaseDistribution]:
        return {**self.gate, "pos_weight": FloatDistribution(*self.pos_weight),
                "noise": FloatDistribution(*self.noise)}

    @property
    def names(self) -> list[str]:
        """The trial table's parameter columns, in sampling order."""
        return list(self.distributions())


SEARCH_SPACES = {
    # the paper's (Section IV-D); lr log-uniform
    MLP: SearchSpace({"lr": FloatDistribution(1e-5, 1e-1, log=True),
                      "hidden": CategoricalDistribution([16, 32, 64, 128]),
                      "epochs": CategoricalDistribution([5, 15, 25, 50, 100, 250])}),
    # ours (the paper gives none): from stumps-like to deep trees, few to many rows per leaf
    FOREST: SearchSpace({"n_estimators": CategoricalDistribution([25, 50, 100]),
                         "max_depth": CategoricalDistribution([2, 4, 8, 16]),
                         "min_samples_leaf": IntDistribution(1, 256, log=True)}),
    BOOSTING: SearchSpace({"learning_rate": FloatDistribution(0.01, 0.3, log=True),
                           "max_iter": CategoricalDistribution([25, 50, 100, 200]),
                           "max_leaf_nodes": CategoricalDistribution([4, 8, 16, 31]),
                           "min_samples_leaf": IntDistribution(5, 200, log=True)}),
}
PARAMETERS = tuple(SEARCH_SPACES[MLP].names)
"""The MLP gate's searched parameters (the paper's five)."""


@dataclass(frozen=True)
class GateData:
    """Rows for training or scoring gates: raw features, soft labels and what fusion needs."""

    feature_names: tuple[str, ...]
    features: np.ndarray  # (n, F) raw
    labels: np.ndarray  # (n, B) each branch's share of the row's label
    lists: np.ndarray  # (n, B, k) shared item ids
    target: np.ndarray  # (n,)

    def subset(self, rows: np.ndarray) -> GateData:
        return GateData(self.feature_names, self.features[rows], self.labels[rows],
                        self.lists[rows], self.target[rows])


def gate_training_data(features: pd.DataFrame, feature_names: Sequence[str], lists: np.ndarray,
                       target: np.ndarray, held_out: float = 0.1, seed: int = 0,
                       top_n: int = 10, tie: str = "first", where: str = "gate training data"
                       ) -> tuple[GateData, GateData]:
    """Eligible rows (a branch hits in its top ``top_n``), split stratified by label class.

    Labels: :func:`hybridrec.hybrid.features.branch_labels` with ``tie``; with hard labels the
    class is the best branch, which for two branches is the paper's label. The rows keep each
    branch's top ``top_n`` only: the search fuses the paper's top-10 lists, however deep the
    exports are. Too few rows of a class for the split raise one message naming ``where`` and
    the counts.
    """
    head = lists[..., :top_n]
    ranks = target_ranks(head, target)
    rows = np.flatnonzero(eligible(ranks, top_n))
    data = GateData(tuple(feature_names), features.loc[:, list(feature_names)].to_numpy(
        dtype=np.float64), branch_labels(ranks, tie), head, target).subset(rows)
    strata = label_classes(data.labels)
    classes, sizes = np.unique(strata, return_counts=True)
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
            f"{top_n} (rows per label class {counts}; class b: branch b is best, higher: a tie "
            f"labelled '{tie}'); a stratified {held_out:g} held-out split needs at least two "
            f"rows of each class and one of each on either side. Train the branches longer, "
            f"use a protocol with more hits, or {advice}")
    train, test = train_test_split(np.arange(len(rows)), test_size=held_out, stratify=strata,
                                   random_state=seed)
    return data.subset(np.sort(train)), data.subset(np.sort(test))


def rebalance(data: GateData, share: float, seed: int) -> GateData:
    """The rows with the largest label class undersampled to ``share`` of them (Section V-C,
    l.436: "rebalancing ... closer to 55%-45% or 60%-40%"); the other classes stay whole.

    The kept rows are drawn from ``numpy.random.default_rng([seed, 3])`` and keep their order.
    Unchanged when the largest class is at most ``share`` already (``share >= 0.5``, so no other
    class can then exceed it).
    """
    strata = label_classes(data.labels)
    classes, sizes = np.unique(strata, return_counts=True)
    largest = classes[np.argmax(sizes)]
    rest = len(strata) - int(sizes.max())
    keep = int(np.floor(share * rest / (1.0 - share)))
    if sizes.max() <= keep:
        return data
    rng = np.random.default_rng([seed, _REBALANCE_STREAM])
    kept = rng.choice(np.flatnonzero(strata == largest), size=keep, replace=False)
    return data.subset(np.sort(np.concatenate([np.flatnonzero(strata != largest), kept])))


def sample_trials(trials: int = 500, seed: int = 0,
                  space: SearchSpace | None = None) -> pd.DataFrame:
    """Every trial's parameters (columns ``trial`` and ``space.names``), deterministic."""
    optuna.logging.set_verbosity(logging.WARNING)
    distributions = (space or SEARCH_SPACES[MLP]).distributions()
    study = optuna.create_study(directions=["maximize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    rows = [{"trial": t.number, **t.params} for t in
            (study.ask(distributions) for _ in range(trials))]
    frame = pd.DataFrame(rows, columns=["trial", *distributions])
    return frame.astype(dict.fromkeys(["trial", *_integers(distributions)], np.int64))


def _integers(distributions: Mapping[str, BaseDistribution]) -> list[str]:
    """The parameters whose values are integers."""
    return [name for name, d in distributions.items()
            if isinstance(d, IntDistribution) or (isinstance(d, CategoricalDistribution)
                                                  and all(isinstance(c, int) for c in d.choices))]


def trial_seed(seed: int, trial: int) -> int:
    """The seed of trial ``trial``'s gate (initial weights and batch order, or trees)."""
    return int(np.random.SeedSequence([seed, trial]).generate_state(1)[0])


def hyperparameters(row: pd.Series) -> GateHyperparameters:
    """The MLP gate part of one trial row."""
    return GateHyperparameters(lr=float(row["lr"]), hidden=int(row["hidden"]),
                               epochs=int(row["epochs"]), pos_weight=float(row["pos_weight"]))


def gate_settings(row: pd.Series, gate: str) -> dict[str, int | float]:
    """A trial's searched gate settings (Section V-B's list, without the fusion noise)."""
    distributions = SEARCH_SPACES[gate].distributions()
    integers = _integers(distributions)
    return {name: int(row[name]) if name in integers else float(row[name])
            for name in distributions if name != "noise"}


def held_out_loss(weights: np.ndarray, labels: np.ndarray) -> float:
    """Mean log loss of branch weights (n, B) against soft labels (n, B): how trials compare."""
    log_w = np.log(np.clip(weights, _LOG_FLOOR, 1.0))
    return float(-(labels * log_w).sum(axis=1).mean())


def run_shard(params: pd.DataFrame, shard_index: int, n_shards: int, train: GateData,
              held_out: GateData, seed: int, top_n: int = 10, threads: int = 1,
              gate: str = MLP, training: GateTraining = PAPER_TRAINING
              ) -> tuple[pd.DataFrame, list[GateModel]]:
    """Train and score the trials with ``trial % n_shards == shard_index``.

    Returns their parameters with the scores :data:`SCORES` on the held-out rows: ``mrr@10``,
    ``ndcg@10``, ``hr@10`` of the fused lists, the held-out loss, and the mean and standard
    deviation of branch 0's weight (alpha); for the MLP also ``epoch``, the epoch whose weights
    it kept. And the trained gates in the table's row order (the gates those scores came from).
    Runs on ``threads`` threads; run shards side by side for more.
    """
    if not 0 <= shard_index < n_shards:
        raise ValueError(f"shard_index must be in [0, {n_shards}), got {shard_index}")
    with limit_threads(threads):
        return _run_shard(params, shard_index, n_shards, train, held_out, seed, top_n, gate,
                          training)


def _run_shard(params: pd.DataFrame, shard_index: int, n_shards: int, train: GateData,
               held_out: GateData, seed: int, top_n: int, gate: str,
               training: GateTraining) -> tuple[pd.DataFrame, list[GateModel]]:
    shard = params[params["trial"] % n_shards == shard_index].reset_index(drop=True)
    seeds = [trial_seed(seed, int(t)) for t in shard["trial"]]
    gates: list[GateModel]
    if gate == MLP:
        trained = train_gates(train.features, train.labels,
                              [hyperparameters(row) for _, row in shard.iterrows()], seeds,
                              train.feature_names, held_out=(held_out.features, held_out.labels),
                              training=training)
        gates = [t.gate for t in trained]
        shard = shard.assign(epoch=[t.epoch for t in trained])
    else:
        gates = [fit_tree_gate(gate, train.features, train.labels, gate_settings(row, gate),
                               float(row["pos_weight"]), s, train.feature_names)
                 for (_, row), s in zip(shard.iterrows(), seeds, strict=True)]
    draws = draw_fusion_randomness(len(held_out.target), held_out.lists.shape[1], top_n,
                                   np.random.default_rng([seed, _FUSION_STREAM]))
    scores = []
    for model, noise in zip(gates, shard["noise"], strict=True):
        weights = model.branch_weights(held_out.features)
        fused = fuse_vectorised(held_out.lists, weights, draws, top_n, float(noise))
        metrics = {k: float(v.mean()) for k, v in
                   per_user_list_metrics(fused, held_out.target).items()}
        scores.append({**metrics, VAL_LOSS: held_out_loss(weights, held_out.labels),
                       "alpha_mean": float(weights[:, 0].mean()),
                       "alpha_std": float(weights[:, 0].std())})
    table = pd.concat([shard, pd.DataFrame(scores, columns=SCORES)], axis=1)
    return table, gates


def best_row(table: pd.DataFrame, selection: str) -> int:
    """Position in ``table`` of the best trial under ``selection`` (:data:`SELECTIONS`)."""
    columns, ascending = SELECTIONS[selection]
    ranked = table.reset_index(drop=True).sort_values(columns, ascending=ascending,
                                                      kind="stable")
    return int(ranked.index[0])


def gather(shards: Sequence[pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, dict]]:
    """All trials sorted by number, and the best one under each rule of :data:`SELECTIONS`
    (its row, each value of its column's type)."""
    table = pd.concat(list(shards), ignore_index=True).sort_values("trial", kind="stable")
    duplicated = table["trial"][table["trial"].duplicated()]
    if len(duplicated):
        raise HybridrecError(f"trials scored by more than one shard: {duplicated.tolist()[:5]}")
    table = table.reset_index(drop=True)
    return table, {rule: table.iloc[[best_row(table, rule)]].to_dict(orient="records")[0]
                   for rule in SELECTIONS}


def write_study(table: pd.DataFrame, path: str | Path, study_name: str, space: SearchSpace,
                selection: str) -> None:
    """The finished search as an Optuna study in a new SQLite file at ``path`` (atomically).

    Values: held-out MRR@10 and NDCG@10 (both maximised); user attributes of each trial: its
    HR@10, held-out loss, alpha statistics and kept epoch; of the study: the selection rule, the
    trial it selected, and the best trial under every rule. Trial numbers are ours. Trials carry
    a fixed time stamp instead of wall times, so equal searches give equal files.
    """
    optuna.logging.set_verbosity(logging.WARNING)
    distributions = space.distributions()
    extra = [column for column in ("hr@10", VAL_LOSS, "alpha_mean", "alpha_std", "epoch")
             if column in table]
    best = {rule: int(table.iloc[best_row(table, rule)]["trial"]) for rule in SELECTIONS}
    with atomic_path(path) as tmp:  # fsynced once, then renamed: no need to sync every insert
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{tmp}", engine_kwargs={"creator": lambda: _unsynced_sqlite(tmp)})
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    directions=["maximize", "maximize"])
        study.set_user_attr("selection", selection)
        study.set_user_attr("selected_trial", best[selection])
        study.set_user_attr("best_trials", best)
        study.add_trials([
            optuna.trial.FrozenTrial(
                number=int(row["trial"]), trial_id=-1, state=optuna.trial.TrialState.COMPLETE,
                value=None, values=[float(row[KEYS[0]]), float(row[KEYS[1]])],
                datetime_start=_NO_TIME, datetime_complete=_NO_TIME,
                params={p: plain(row[p]) for p in distributions}, distributions=distributions,
                user_attrs={c: plain(row[c]) for c in extra}, system_attrs={},
                intermediate_values={})
            for _, row in table.sort_values("trial").iterrows()])
        storage.engine.dispose()


def _unsynced_sqlite(path: Path) -> sqlite3.Connection:
    """An SQLite connection that neither syncs nor journals on disk (twice as fast to fill)."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA journal_mode=MEMORY")
    return connection
