"""Result tables as DataFrames (written to CSV by the scripts)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hybridrec.reporting.paper import FMLP_BEAUTY, LINREC_ML1M, TABLE5

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
             "best_epoch": r["training"]["best_epoch"]}
            for r in reports]
    return pd.DataFrame(rows)


def load_evaluations(datasets: Sequence[str], paths: Sequence[str | Path]) -> dict[str, dict]:
    """The hybrid stage's evaluation.json per dataset."""
    return {name: json.loads(Path(path).read_text())
            for name, path in zip(datasets, paths, strict=True)}


def hybrid_table(evaluations: dict[str, dict], protocol: str,
                 paper_names: dict[str, str | None]) -> pd.DataFrame:
    """Table V: the branches and the hybrid per dataset, the paper's figures beside ours."""
    rows = []
    for dataset, evaluation in evaluations.items():
        for method in evaluation["methods"]:
            if method["method"] not in (*_branch_names(evaluation), "hybrid"):
                continue
            paper = TABLE5.get((paper_names.get(dataset) or "", method["method"]), (None, None))
            rows.append({
                "dataset": dataset, "method": method["method"], "protocol": protocol,
                "mrr10": method["mrr@10"], "ndcg10": method["ndcg@10"], "hr10": method["hr@10"],
                "mrr10_std": method["mrr@10_std"], "ndcg10_std": method["ndcg@10_std"],
                "paper_mrr10": paper[0], "paper_ndcg10": paper[1],
            })
    return pd.DataFrame(rows, columns=["dataset", "method", "protocol", "mrr10", "ndcg10", "hr10",
                                       "mrr10_std", "ndcg10_std", "paper_mrr10", "paper_ndcg10"])


def hybrid_extended_table(evaluations: dict[str, dict], protocol: str) -> pd.DataFrame:
    """Table V extended: every method incl. baselines, and the bootstrap interval per metric."""
    rows = []
    for dataset, evaluation in evaluations.items():
        intervals = {b["metric"]: b for b in evaluation["bootstrap"]}
        for method in evaluation["methods"]:
            row = {"dataset": dataset, "method": method["method"], "protocol": protocol,
                   "mrr10": method["mrr@10"], "ndcg10": method["ndcg@10"],
                   "hr10": method["hr@10"], "mrr10_std": method["mrr@10_std"],
                   "ndcg10_std": method["ndcg@10_std"], "users": method["users"]}
            if method["method"] == "hybrid":
                for key, name in (("mrr@10", "mrr10"), ("ndcg@10", "ndcg10")):
                    interval = intervals[key]
                    row[f"{name}_vs"] = interval["baseline"]
                    row[f"{name}_diff"] = interval["difference"]
                    row[f"{name}_diff_low"] = interval["low"]
                    row[f"{name}_diff_high"] = interval["high"]
            rows.append(row)
    return pd.DataFrame(rows)


def _branch_names(evaluation: dict) -> list[str]:
    """Methods listed before "hybrid" in an evaluation are the fused branches."""
    names = [m["method"] for m in evaluation["methods"]]
    return names[:names.index("hybrid")]
