"""The ablation table: each variant's test metrics as mean and spread over its seeds.

One row per (protocol, variant or baseline), from the metrics files of its runs (a variant:
one run per seed, ``<variant>.s<seed>``, or the base model's own run for a seed where the variant
is that run; a baseline: the declared model's own run). The spread is
the sample standard deviation (``ddof = 1``; empty for a single run) with ``n`` the runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.reporting.markdown import markdown_table

METRICS = ("hr@10", "ndcg@10", "mrr")


def ablation_table(dataset: str, rows: Sequence[Mapping[str, Any]],
                   reports: Mapping[str, Mapping[str, Any]],
                   protocols: Sequence[str]) -> pd.DataFrame:
    """``rows``: ``name``, ``model`` (the base), ``overrides`` (key -> value), ``seeds`` and
    ``runs`` (the run names, one per seed); ``reports``: each run's metrics JSON by run name.
    Protocol-major, rows in the given order."""
    records = []
    for protocol in protocols:
        for row in rows:
            values = np.array([[reports[run]["splits"]["test"][protocol][metric]
                                for metric in METRICS] for run in row["runs"]])  # (runs, 3)
            record: dict[str, Any] = {
                "dataset": dataset, "name": row["name"], "model": row["model"],
                "overrides": format_overrides(row["overrides"]), "protocol": protocol,
                "seeds": " ".join(map(str, row["seeds"])), "n": len(row["runs"])}
            for metric, column in zip(METRICS, values.T, strict=True):
                record[f"{metric}_mean"] = float(column.mean())
                record[f"{metric}_std"] = float(column.std(ddof=1)) if len(column) > 1 else None
            records.append(record)
    return pd.DataFrame(records)


def format_overrides(overrides: Mapping[str, Any]) -> str:
    """``text=false, conv_kernels=[3, 5]`` (JSON values); empty for none."""
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in overrides.items())


def ablation_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """The table for reading: one ``mean ± std`` cell per metric (the mean alone for n = 1)."""
    def cell(mean: float, std: float | None) -> str:
        if std is None or pd.isna(std):
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    readable = table[["protocol", "name", "model", "overrides", "n"]].copy()
    for metric in METRICS:
        readable[metric.upper()] = [
            cell(mean, std) for mean, std in zip(table[f"{metric}_mean"], table[f"{metric}_std"],
                                                 strict=True)]
    return markdown_table(readable, digits)
