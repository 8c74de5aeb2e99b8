"""Tables V and VI: one row per protocol, published figures only beside ours under theirs."""

from __future__ import annotations

import pandas as pd
import pytest

from hybridrec.reporting.paper import TABLE5, TABLE6
from hybridrec.reporting.tables import hybrid_table, lists_protocol, winners_table

PAPER_NAMES = {"beauty-fmlp": "beauty", "demo": None}


def _evaluation(linrec: str, fmlp: str) -> dict:
    methods = [{"method": m, "mrr@10": 0.1, "ndcg@10": 0.2, "hr@10": 0.3, "mrr@10_std": 0.0,
                "ndcg@10_std": 0.0, "users": 4} for m in ("linrec", "fmlp", "hybrid", "oracle")]
    # write_json sorts keys: the protocols mapping does not keep the branch order
    return {"methods": methods, "protocols": {"fmlp": fmlp, "linrec": linrec}, "bootstrap": []}


RUNS = {(dataset, protocol): _evaluation(*(("pop100", "uniform99") if protocol == "paper"
                                           else (protocol, protocol)))
        for dataset in ("beauty-fmlp", "demo")
        for protocol in ("full", "uniform99", "pop100", "paper")}


def test_a_published_figure_sits_only_beside_ours_under_its_own_protocol() -> None:
    table = hybrid_table(RUNS, PAPER_NAMES)
    assert len(table) == 2 * 4 * 3  # datasets x protocols x (linrec, fmlp, hybrid)
    shown = table.dropna(subset=["paper_ndcg10"])
    assert (shown["dataset"] == "beauty-fmlp").all()
    where = set(zip(shown["method"], shown["protocol"], strict=True))
    assert where == {("linrec", "pop100"), ("linrec", "paper"), ("fmlp", "uniform99"),
                     ("fmlp", "paper"), ("hybrid", "paper")}
    for _, row in shown.iterrows():  # each paper cell names the protocol it was computed under
        assert row["paper_protocol"] == row["lists"]
        mrr, ndcg = TABLE5[("beauty", row["method"])]
        assert row["paper_ndcg10"] == ndcg
        if row["method"] == "fmlp":  # the paper's FMLP-Rec MRR is over 100 candidates, not @10
            assert pd.isna(row["paper_mrr10"]) and "not MRR@10" in row["note"]
        else:
            assert row["paper_mrr10"] == mrr
    hybrid = shown[shown["method"] == "hybrid"].iloc[0]
    assert hybrid["lists"] == "linrec pop100 + fmlp uniform99"
    # the paper block says it is mixed on purpose; no other row carries that note
    assert table["note"].fillna("").str.contains("on purpose").eq(
        table["protocol"] == "paper").all()
    assert "on purpose" in hybrid["note"]
    assert table.loc[table["protocol"] == "full", "paper_mrr10"].isna().all()


def test_table6_counts_per_protocol_with_the_papers_column_under_the_paper_block(tmp_path):
    categories = ["neither", "fmlp", "both", "fmlp", "linrec", "neither"]
    paths = []
    for i, _ in enumerate(RUNS):
        path = tmp_path / f"{i}.parquet"
        pd.DataFrame({"category": categories}).to_parquet(path)
        paths.append(path)
    table = winners_table(RUNS, paths, PAPER_NAMES)
    first = table[(table["dataset"] == "demo") & (table["protocol"] == "full")]
    assert first["category"].tolist() == ["linrec", "fmlp", "both", "neither"]  # report order
    assert first["users"].tolist() == [1, 2, 1, 2]
    shown = table.dropna(subset=["paper_users"])
    assert set(zip(shown["dataset"], shown["protocol"], strict=True)) == {("beauty-fmlp",
                                                                          "paper")}
    assert shown["paper_users"].tolist() == [TABLE6["beauty"][c] for c in shown["category"]]
    assert (shown["paper_protocol"] == "linrec pop100 + fmlp uniform99").all()


@pytest.mark.parametrize(("method", "expected"), [("linrec", "pop100"), ("fmlp", "uniform99"),
                                                  ("hybrid", "linrec pop100 + fmlp uniform99")])
def test_lists_protocol_names_each_branch_in_branch_order(method, expected) -> None:
    assert lists_protocol(method, RUNS[("demo", "paper")]) == expected
    assert lists_protocol(method, RUNS[("demo", "full")]) == "full"
