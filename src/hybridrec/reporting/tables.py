"""Result tables as DataFrames (written to CSV by the scripts)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.hybrid.features import category_counts, category_names
from hybridrec.protocols import PAPER
from hybridrec.reporting.paper import (
    FMLP_BEAUTY,
    LINREC_ML1M,
    TABLE5,
    TABLE5_MRR_AT_10,
    TABLE5_PROTOCOLS,
    TABLE6,
    TABLE6_PROTOCOL,
)

METRIC_COLUMNS = ["hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr@10", "mrr"]


def dataset_stats_table(datasets: Sequence[str], stats_paths: Sequence[str | Path]) -> pd.DataFrame:
    """Table IV: one row per dataset from each dataset's stats.json."""
    rows = [{"dataset": name, **json.loads(Path(path).read_text())}
            for name, path in zip(datasets, stats_paths, strict=True)]
    columns = ["dataset", "users", "items", "interactions", "sparsity",
               "mean_length", "median_length", "max_length", "dropped_users"]
    return pd.DataFrame(rows)[columns]


def load_metrics(paths: Sequence[str | Path]) -> list[dict]:
    """The metrics JSON files written by the evaluate rule."""
    return [json.loads(Path(p).read_text()) for p in paths]


def paper_vs_ours(reports: list[dict], model: str, protocol: str, paper_dataset: str,
                  paper: dict[str, float], paper_names: dict[str, str | None]) -> pd.DataFrame:
    """One row per dataset where ``model`` ran: our test metrics under ``protocol`` and, where the
    dataset is the paper's, the published figure beside each (empty otherwise)."""
    rows = []
    for report in reports:
        if report["model"] != model or protocol not in report["splits"]["test"]:
            continue
        ours = report["splits"]["test"][protocol]
        is_paper = paper_names.get(report["dataset"]) == paper_dataset
        row: dict = {"dataset": report["dataset"], "model": model, "protocol": protocol}
        for key in METRIC_COLUMNS:
            row[key] = ours[key]
            row[f"paper_{key}"] = paper.get(key) if is_paper else None
        rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "model", "protocol", *[
        c for key in METRIC_COLUMNS for c in (key, f"paper_{key}")]])


def fmlp_table(reports: list[dict], paper_names: dict[str, str | None]) -> pd.DataFrame:
    """Table I: FMLP-Rec, the FMLP-Rec paper's protocol (uniform99)."""
    return paper_vs_ours(reports, "fmlp", "uniform99", "beauty", FMLP_BEAUTY, paper_names)


def linrec_table(reports: list[dict], paper_names: dict[str, str | None]) -> pd.DataFrame:
    """Table II: LinRec, the LinRec paper's protocol (pop100)."""
    return paper_vs_ours(reports, "linrec", "pop100", "ml-1m", LINREC_ML1M, paper_names)


def models_table(reports: list[dict], protocol: str) -> pd.DataFrame:
    """Table III: every model on every dataset, test MRR@10 / NDCG@10 (and HR@10), one protocol."""
    rows = [{"dataset": r["dataset"], "model": r["model"], "protocol": protocol,
             "mrr10": r["splits"]["test"][protocol]["mrr@10"],
             "ndcg10": r["splits"]["test"][protocol]["ndcg@10"],
             "hr10": r["splits"]["test"][protocol]["hr@10"],
             "best_epoch": r["training"]["selections"][protocol]["epoch"]}
            for r in reports]
    return pd.DataFrame(rows)


HybridRuns = Mapping[tuple[str, str], dict]
"""The hybrid stage's evaluation.json per (dataset, protocol), in report order."""

PAPER_BLOCK_NOTE = ("the paper's mixed protocols, reproduced on purpose: each branch ranked "
                    "against its own paper's candidates; not a comparison under one protocol")

PAPER_MRR_NOTE = ("the paper's MRR for this row is over all 100 candidates, not MRR@10: "
                  "compared with ours in the bundle's comparison table")


def load_evaluations(runs: Sequence[tuple[str, ...]],
                     paths: Sequence[str | Path]) -> dict[tuple[str, ...], dict]:
    """Each hybrid run's evaluation.json, by its (dataset, protocol[, variant])."""
    return {run: json.loads(Path(path).read_text())
            for run, path in zip(runs, paths, strict=True)}


def lists_protocol(method: str, evaluation: dict) -> str:
    """The protocol ``method``'s lists were ranked under: a branch's own, or for a fused method
    the shared one, or each branch's (``"linrec pop100 + fmlp uniform99"``) when they differ."""
    protocols = evaluation["protocols"]
    if method in protocols:
        return str(protocols[method])
    if len(set(protocols.values())) == 1:
        return str(next(iter(protocols.values())))
    return " + ".join(f"{branch} {protocols[branch]}" for branch in _branch_names(evaluation))


def hybrid_table(evaluations: HybridRuns, paper_names: Mapping[str, str | None]) -> pd.DataFrame:
    """Table V: the branches and the hybrid per dataset and protocol.

    A published figure is printed only beside ours computed under the protocol it was computed
    under (``paper_protocol`` names it): LinRec's under pop100, FMLP-Rec's under uniform99, the
    hybrid's under the paper's mixed protocols (the ``paper`` block, marked in ``note``), and an
    MRR only where the paper's is MRR@10 too (not FMLP-Rec's: ``note`` says so).
    """
    rows = []
    for (dataset, protocol), evaluation in evaluations.items():
        for method in evaluation["methods"]:
            name = method["method"]
            if name not in (*_branch_names(evaluation), "hybrid"):
                continue
            lists = lists_protocol(name, evaluation)
            paper = TABLE5.get((paper_names.get(dataset) or "", name))
            matches = paper is not None and TABLE5_PROTOCOLS[name] == lists
            note = PAPER_BLOCK_NOTE if protocol == PAPER else None
            if matches and not TABLE5_MRR_AT_10[name]:
                note = "; ".join(filter(None, [note, PAPER_MRR_NOTE]))
            rows.append({
                "dataset": dataset, "protocol": protocol, "method": name, "lists": lists,
                "mrr10": method["mrr@10"], "ndcg10": method["ndcg@10"], "hr10": method["hr@10"],
                "mrr10_std": method["mrr@10_std"], "ndcg10_std": method["ndcg@10_std"],
                "paper_mrr10": paper[0] if matches and paper and TABLE5_MRR_AT_10[name]
                else None,
                "paper_ndcg10": paper[1] if matches and paper else None,
                "paper_protocol": TABLE5_PROTOCOLS[name] if matches else None,
                "note": note,
            })
    return pd.DataFrame(rows, columns=["dataset", "protocol", "method", "lists", "mrr10",
                                       "ndcg10", "hr10", "mrr10_std", "ndcg10_std",
                                       "paper_mrr10", "paper_ndcg10", "paper_protocol", "note"])


def hybrid_extended_table(evaluations: HybridRuns) -> pd.DataFrame:
    """Table V extended: every method incl. baselines, and for each but the single branches its
    difference to the better branch with the paired bootstrap interval, per metric."""
    rows = []
    for (dataset, protocol), evaluation in evaluations.items():
        for method in evaluation["methods"]:
            row = {"dataset": dataset, "protocol": protocol, "method": method["method"],
                   "lists": lists_protocol(method["method"], evaluation),
                   "mrr10": method["mrr@10"], "ndcg10": method["ndcg@10"],
                   "hr10": method["hr@10"], "mrr10_std": method["mrr@10_std"],
                   "ndcg10_std": method["ndcg@10_std"], "users": method["users"]}
            rows.append(row | _intervals(evaluation, method["method"]))
    return pd.DataFrame(rows)


def winners_table(evaluations: HybridRuns, feature_paths: Sequence[str | Path],
                  paper_names: Mapping[str, str | None], split: str = "test") -> pd.DataFrame:
    """Table VI: users of one split per winner category, dataset and protocol
    (``feature_paths``: each run's features/<split>.parquet, in the order of ``evaluations``).

    The paper's count is printed beside ours only under the paper's protocols
    (``paper_protocol`` names them) and only beside test rows: the paper does not name its split
    (its Section V-C cites the table for the gate's training data, which is validation), and
    the comparison with published figures reads these counts as test users."""
    parts = []
    for ((dataset, protocol), evaluation), path in zip(evaluations.items(), feature_paths,
                                                      strict=True):
        categories = pd.read_parquet(path, columns=["category"])["category"]
        counts = category_counts(pd.Series(pd.Categorical(  # report order, zeros kept
            categories, categories=category_names(_branch_names(evaluation)))))
        paper = TABLE6.get(paper_names.get(dataset) or "")
        matches = (split == "test" and paper is not None
                   and lists_protocol("hybrid", evaluation) == TABLE6_PROTOCOL)
        parts.append(counts.assign(
            dataset=dataset, protocol=protocol, split=split,
            paper_users=[paper.get(c) if matches and paper else None for c in counts["category"]],
            paper_protocol=TABLE6_PROTOCOL if matches else None))
    columns = ["dataset", "protocol", "split", "category", "users", "paper_users",
               "paper_protocol"]
    if not parts:
        return pd.DataFrame(columns=columns)
    table = pd.concat(parts, ignore_index=True)[columns]
    return table.astype({"paper_users": "Int64"})


def winners_by_split(evaluations: HybridRuns, valid_paths: Sequence[str | Path],
                     test_paths: Sequence[str | Path],
                     paper_names: Mapping[str, str | None]) -> pd.DataFrame:
    """Table VI on validation and on test, per dataset and protocol (validation first)."""
    both = pd.concat([winners_table(evaluations, valid_paths, paper_names, split="valid"),
                      winners_table(evaluations, test_paths, paper_names, split="test")],
                     ignore_index=True)
    order = {run: i for i, run in enumerate(evaluations)}
    rank = [order[(d, p)] for d, p in zip(both["dataset"], both["protocol"], strict=True)]
    return both.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)


GATE_SETTINGS = ["lr", "hidden", "epochs", "n_estimators", "max_depth", "learning_rate",
                 "max_iter", "max_leaf_nodes", "min_samples_leaf", "pos_weight"]
"""The searched settings of every gate kind, in table order (a kind fills its own)."""


def gate_settings_table(evaluations: HybridRuns,
                        shap_rankings: Sequence[Sequence[str]]) -> pd.DataFrame:
    """The selected gate per dataset and protocol (the paper's Section V-B: its settings, the
    kept epoch, noise, features and the rule that selected it), the SHAP ranking beside its
    features, and its alpha over the test users (mean, max, quantiles, and Fig. 6's trend as
    the Spearman correlation of alpha with sequence length)."""
    rows = []
    for ((dataset, protocol), evaluation), ranking in zip(evaluations.items(), shap_rankings,
                                                          strict=True):
        gate = evaluation["gate"]
        row = {"dataset": dataset, "protocol": protocol, "gate": gate["gate"],
               "selection": gate["selection"], "trial": gate["trial"],
               "features": " ".join(gate["features"]), "shap_ranking": " ".join(ranking),
               **{name: gate["settings"].get(name) for name in GATE_SETTINGS},
               "epoch_kept": gate["epoch"], "noise": gate["noise"],
               **{f"held_out_{key}": value for key, value in gate["held_out"].items()},
               **{f"alpha_{key}": value for key, value in evaluation["alpha"].items()}}
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.dropna(axis=1, how="all") if len(table) else table


def hybrid_variants_table(evaluations: Mapping[tuple[str, str, str], dict],
                          overrides: Mapping[str, Mapping[str, object]]) -> pd.DataFrame:
    """The hybrid.variants side by side, per dataset, protocol and variant (``default``: the
    configured run): what each overrides, its gate's alpha on test (mean, max), its test
    MRR@10 and NDCG@10, and its difference to the better single branch with the paired
    bootstrap interval."""
    rows = []
    for (dataset, protocol, variant), evaluation in evaluations.items():
        hybrid = next(m for m in evaluation["methods"] if m["method"] == "hybrid")
        row = {"dataset": dataset, "protocol": protocol, "variant": variant,
               "overrides": ", ".join(f"{k}={v}" for k, v in overrides.get(variant, {}).items()),
               "gate": evaluation["gate"]["gate"], "selection": evaluation["gate"]["selection"],
               "alpha_mean": evaluation["alpha"]["mean"], "alpha_max": evaluation["alpha"]["max"],
               "mrr10": hybrid["mrr@10"], "ndcg10": hybrid["ndcg@10"]}
        rows.append(row | _intervals(evaluation, "hybrid"))
    return pd.DataFrame(rows)


def _intervals(evaluation: dict, method: str) -> dict[str, object]:
    """``method``'s difference to the better branch and its bootstrap interval, per metric
    (``mrr10_vs``, ``mrr10_diff``, ``mrr10_diff_low``, ``mrr10_diff_high``, ...); none for a
    single branch."""
    row: dict[str, object] = {}
    for interval in evaluation["bootstrap"]:
        if interval["method"] == method:
            name = interval["metric"].replace("@", "")
            row |= {f"{name}_vs": interval["baseline"], f"{name}_diff": interval["difference"],
                    f"{name}_diff_low": interval["low"], f"{name}_diff_high": interval["high"]}
    return row


def _branch_names(evaluation: dict) -> list[str]:
    """Methods listed before "hybrid" in an evaluation are the fused branches."""
    names = [m["method"] for m in evaluation["methods"]]
    return names[:names.index("hybrid")]
