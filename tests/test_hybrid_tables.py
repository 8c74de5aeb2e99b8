"""Tables V and VI: one row per protocol, published figures only beside ours under theirs."""

from __future__ import annotations

import pandas as pd
import pytest

from hybridrec.reporting.paper import TABLE5, TABLE6
from hybridrec.reporting.tables import (
    gate_settings_table,
    hybrid_extended_table,
    hybrid_table,
    hybrid_variants_table,
    lists_protocol,
    winners_by_split,
    winners_table,
)

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
    valid_paths = []
    for i, _ in enumerate(RUNS):
        valid_paths.append(tmp_path / f"valid{i}.parquet")
        pd.DataFrame({"category": ["fmlp", "fmlp", "both"]}).to_parquet(valid_paths[-1])
    table = winners_by_split(RUNS, valid_paths, paths, PAPER_NAMES)
    assert list(table.columns) == ["dataset", "protocol", "split", "category", "users",
                                   "paper_users", "paper_protocol"]
    first = table[(table["dataset"] == "demo") & (table["protocol"] == "full")]
    assert first["split"].tolist() == ["valid"] * 4 + ["test"] * 4  # each run: valid, test
    assert first["category"].tolist() == ["linrec", "fmlp", "both", "neither"] * 2
    assert first["users"].tolist() == [0, 2, 1, 0, 1, 2, 1, 2]  # report order, zeros kept
    shown = table.dropna(subset=["paper_users"])
    assert set(zip(shown["dataset"], shown["protocol"], shown["split"], strict=True)) == {
        ("beauty-fmlp", "paper", "test")}
    assert shown["paper_users"].tolist() == [TABLE6["beauty"][c] for c in shown["category"]]
    assert (shown["paper_protocol"] == "linrec pop100 + fmlp uniform99").all()
    assert winners_table(RUNS, paths, PAPER_NAMES).equals(table[table["split"] == "test"]
                                                          .reset_index(drop=True))


@pytest.mark.parametrize(("method", "expected"), [("linrec", "pop100"), ("fmlp", "uniform99"),
                                                  ("hybrid", "linrec pop100 + fmlp uniform99")])
def test_lists_protocol_names_each_branch_in_branch_order(method, expected) -> None:
    assert lists_protocol(method, RUNS[("demo", "paper")]) == expected
    assert lists_protocol(method, RUNS[("demo", "full")]) == "full"


def _gated(gate: str, settings: dict, alpha_mean: float, mrr_diff: float) -> dict:
    evaluation = _evaluation("full", "full")
    evaluation["gate"] = {"gate": gate, "selection": "val_loss", "trial": 3,
                          "features": ["length", "unique_items", "entropy"],
                          "settings": settings, "epoch": 4 if gate == "mlp" else None,
                          "noise": 0.05, "held_out": {"mrr@10": 0.4, "val_loss": 0.6}}
    evaluation["alpha"] = {"mean": alpha_mean, "max": 0.5, "q05": 0.01, "q50": 0.1,
                           "q95": 0.4, "spearman_length": -0.3}
    evaluation["bootstrap"] = [{"method": method, "metric": m, "baseline": "fmlp",
                                "difference": diff, "low": diff - 0.01, "high": diff + 0.01}
                               for method, diff in (("hybrid", mrr_diff), ("oracle", 0.2))
                               for m in ("mrr@10", "ndcg@10")]
    return evaluation


def test_gate_settings_list_the_selected_gate_and_its_alpha() -> None:
    mlp = {"lr": 0.01, "hidden": 16, "epochs": 25, "pos_weight": 0.3}
    runs = {("demo", "full"): _gated("mlp", mlp, 0.1, 0.0),
            ("demo", "uniform99"): _gated("random_forest", {"n_estimators": 50, "max_depth": 4,
                                                            "min_samples_leaf": 8,
                                                            "pos_weight": 0.5}, 0.2, 0.0)}
    ranking = ["jaccard", "length", "entropy", "intersection", "unique_items", "max_freq_ratio"]
    table = gate_settings_table(runs, [ranking, ranking])
    mlp_row, forest = table.iloc[0], table.iloc[1]
    assert (mlp_row["gate"], mlp_row["selection"], mlp_row["lr"], mlp_row["hidden"],
            mlp_row["epochs"], mlp_row["epoch_kept"], mlp_row["pos_weight"],
            mlp_row["noise"]) == ("mlp", "val_loss", 0.01, 16, 25, 4, 0.3, 0.05)
    assert mlp_row["features"] == "length unique_items entropy"
    assert mlp_row["shap_ranking"].startswith("jaccard length")
    assert pd.isna(mlp_row["n_estimators"]) and forest["n_estimators"] == 50
    assert pd.isna(forest["lr"]) and pd.isna(forest["epoch_kept"])
    assert (mlp_row["alpha_mean"], mlp_row["alpha_max"], mlp_row["alpha_spearman_length"]) == (
        0.1, 0.5, -0.3)
    assert "learning_rate" not in table  # no gate of that kind ran: no column


def test_the_variants_table_puts_each_variant_beside_the_default() -> None:
    mlp = {"lr": 0.01, "hidden": 16, "epochs": 25, "pos_weight": 0.3}
    runs = {("demo", "full", "default"): _gated("mlp", mlp, 0.1, -0.02),
            ("demo", "full", "forest"): _gated("random_forest", {}, 0.3, 0.01)}
    table = hybrid_variants_table(runs, {"forest": {"gate": "random_forest"}})
    assert table["variant"].tolist() == ["default", "forest"]
    assert table["overrides"].tolist() == ["", "gate=random_forest"]
    assert table["gate"].tolist() == ["mlp", "random_forest"]
    assert table["alpha_mean"].tolist() == [0.1, 0.3]
    assert table["mrr10"].tolist() == [0.1, 0.1]  # each run's hybrid row
    assert table["mrr10_vs"].tolist() == ["fmlp", "fmlp"]
    assert table["mrr10_diff"].tolist() == [-0.02, 0.01]
    assert table["ndcg10_diff_low"].tolist() == pytest.approx([-0.03, 0.0])


def test_the_extended_table_puts_an_interval_beside_every_method_but_the_branches() -> None:
    mlp = {"lr": 0.01, "hidden": 16, "epochs": 25, "pos_weight": 0.3}
    table = hybrid_extended_table({("demo", "full"): _gated("mlp", mlp, 0.1, -0.02)})
    rows = table.set_index("method")
    assert list(rows.index) == ["linrec", "fmlp", "hybrid", "oracle"]
    assert rows["mrr10_diff"].tolist()[2:] == [-0.02, 0.2]  # each method's own interval
    assert rows.loc[["linrec", "fmlp"], "mrr10_diff"].isna().all()
    assert rows.loc["oracle", "ndcg10_diff_high"] == pytest.approx(0.21)
