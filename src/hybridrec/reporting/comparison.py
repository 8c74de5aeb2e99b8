"""Our figures beside every published one that applies to a dataset, each under its own protocol.

One row per published number: where it is printed, the model, the protocol both were computed
under, the metric, the published value, ours and the difference. Single models come from their
metrics reports (test split); the hybrid's Table V row and Table VI's counts from the hybrid
stage's tables under the paper's mixed protocols (``paper``), where those tables already hold the
published figure beside ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from hybridrec.protocols import PAPER
from hybridrec.reporting.paper import PUBLISHED, TABLE5_PROTOCOLS

COLUMNS = ["source", "model", "protocol", "metric", "published", "ours", "difference", "note"]
NOTABLE = 0.01
"""A difference larger than this is marked for an explanation (docs/results/README.md)."""


def comparison_table(paper_dataset: str | None, reports: Mapping[str, Mapping[str, Any]],
                     table5: pd.DataFrame | None = None,
                     table6: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every published figure for ``paper_dataset`` beside ours (``reports``: model -> metrics
    report; ``table5``/``table6``: this dataset's rows of Tables V and VI). Empty for a dataset
    of none of the papers."""
    rows: list[dict[str, Any]] = []
    for published in PUBLISHED:
        if published.dataset != paper_dataset or published.model not in reports:
            continue
        test = reports[published.model]["splits"]["test"]
        measured = test.get(published.protocol)
        for metric, value in published.metrics.items():
            rows.append(_row(published.source, published.model, published.protocol, metric,
                             value, None if measured is None else measured[metric],
                             None if measured is not None else
                             f"{published.protocol} not in evaluation.protocols"))
    if table5 is not None:
        hybrid = table5[(table5["protocol"] == PAPER) & (table5["method"] == "hybrid")]
        for row in hybrid.dropna(subset=["paper_ndcg10"]).itertuples():
            for metric, ours, value in (("mrr@10", row.mrr10, row.paper_mrr10),
                                        ("ndcg@10", row.ndcg10, row.paper_ndcg10)):
                rows.append(_row("hybrid paper Table V", "hybrid", TABLE5_PROTOCOLS["hybrid"],
                                 metric, value, ours, None))
    if table6 is not None:
        for row in table6.dropna(subset=["paper_users"]).itertuples():
            rows.append(_row("hybrid paper Table VI", "hybrid", str(row.paper_protocol),
                             f"test users: {row.category}", float(row.paper_users),
                             float(row.users), "a count of users, not a rate"))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(source: str, model: str, protocol: str, metric: str, published: float,
         ours: float | None, note: str | None) -> dict[str, Any]:
    difference = None if ours is None else ours - published
    if difference is not None and abs(difference) > NOTABLE and not metric.startswith("test users"):
        note = "; ".join(filter(None, [note, f"differs by more than {NOTABLE}"]))
    return {"source": source, "model": model, "protocol": protocol, "metric": metric,
            "published": published, "ours": ours, "difference": difference, "note": note}
