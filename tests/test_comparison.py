"""The bundle's comparison with the published figures: each under its own protocol."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import SHARED_DATASETS

from hybridrec.reporting.comparison import comparison_table
from hybridrec.reporting.paper import FMLP_BEAUTY, PUBLISHED, TABLE5, TABLE6
from hybridrec.reporting.tables import hybrid_table, winners_table

METRICS = ("hr@1", "hr@5", "ndcg@5", "hr@10", "ndcg@10", "mrr", "mrr@10")


def _report(value_of: dict[str, float]) -> dict:
    """A metrics report whose every metric under protocol p has the value value_of[p]."""
    return {"splits": {"test": {p: dict.fromkeys(METRICS, v) for p, v in value_of.items()}}}


REPORTS = {model: _report({"full": 0.05, "uniform99": 0.3, "pop100": 0.2})
           for model in ("linrec", "fmlp", "sasrec")}


def published_texts() -> str:
    """The papers' own texts and the project's reference notes, an independent source of the
    figures typed into hybridrec.reporting.paper (skips where ../shared is absent)."""
    shared = SHARED_DATASETS.parent
    files = [shared / "REFERENCE.md", *sorted((shared / "seeds").glob("*.txt"))]
    if not all(f.exists() for f in files[:1]):
        pytest.skip(f"{files[0]} is absent (CI has ../shared beside the repository)")
    return "\n".join(f.read_text(encoding="utf-8") for f in files).replace(",", "")


def test_every_transcribed_figure_is_printed_in_the_papers_or_the_reference_notes():
    """A typo in a transcribed figure would not be found in the sources it was copied from."""
    text = published_texts()
    figures = [(p.source, metric, f"{value:.4f}") for p in PUBLISHED
               for metric, value in p.metrics.items()]
    figures += [("Table V", f"{key}", f"{value:.4f}") for key, pair in TABLE5.items()
                for value in pair]
    figures += [("Table VI", f"{dataset} {name}", str(count))
                for dataset, counts in TABLE6.items() for name, count in counts.items()]
    missing = [figure for figure in figures if figure[2] not in text]
    assert missing == []


def test_every_published_single_model_figure_of_the_dataset_sits_beside_ours_under_its_protocol():
    table = comparison_table("beauty", REPORTS)
    expected = [(p.source, p.model, p.protocol, metric, value) for p in PUBLISHED
                if p.dataset == "beauty" for metric, value in p.metrics.items()]
    assert list(zip(table["source"], table["model"], table["protocol"], table["metric"],
                    table["published"], strict=True)) == expected
    assert "full" not in set(table["protocol"])  # no paper ranks against the whole catalogue
    fmlp_paper = table[table["source"].str.startswith("FMLP-Rec paper")]
    assert dict(zip(fmlp_paper["metric"], fmlp_paper["published"], strict=True)) == FMLP_BEAUTY
    ours = {"uniform99": 0.3, "pop100": 0.2}
    for row in table.itertuples():
        assert row.ours == ours[row.protocol]
        assert row.difference == pytest.approx(row.ours - row.published)
        note = row.note if isinstance(row.note, str) else ""
        assert (abs(row.difference) > 0.01) == ("differs by more than" in note)
    # the hybrid paper's FMLP-Rec MRR is over all 100 candidates: compared with our `mrr`
    table5_fmlp = table[(table["source"] == "hybrid paper Tables III and V")
                        & (table["model"] == "fmlp")]
    assert set(table5_fmlp["metric"]) == {"mrr", "ndcg@10"}


def test_models_not_run_and_protocols_not_evaluated_are_said_not_guessed():
    reports = {"fmlp": _report({"full": 0.05})}  # no uniform99; LinRec and SASRec not run
    table = comparison_table("beauty", reports)
    assert set(table["model"]) == {"fmlp"}
    assert table["ours"].isna().all()
    assert table["note"].str.contains("uniform99 not in evaluation.protocols").all()


def test_a_dataset_of_no_paper_has_nothing_to_compare_and_sports_has_sasrec():
    assert comparison_table(None, REPORTS).empty
    sports = comparison_table("sports", REPORTS)
    assert set(sports["model"]) == {"sasrec"}
    assert set(sports["source"]) == {"S3-Rec paper Table 2 (SASRec row)"}


def test_table5_hybrid_and_table6_rows_come_from_the_paper_block(tmp_path):
    methods = [{"method": m, "mrr@10": 0.25, "ndcg@10": 0.3, "hr@10": 0.4, "mrr@10_std": 0.0,
                "ndcg@10_std": 0.0, "users": 4} for m in ("linrec", "fmlp", "hybrid")]
    runs = {("beauty-fmlp", protocol): {"methods": methods, "bootstrap": [],
                                        "protocols": lists}
            for protocol, lists in (("full", {"linrec": "full", "fmlp": "full"}),
                                    ("paper", {"linrec": "pop100", "fmlp": "uniform99"}))}
    names = {"beauty-fmlp": "beauty"}
    table5 = hybrid_table(runs, names)
    paths = []
    for i in range(len(runs)):
        paths.append(tmp_path / f"{i}.parquet")
        pd.DataFrame({"category": ["fmlp", "neither", "both"]}).to_parquet(paths[-1])
    table6 = winners_table(runs, paths, names)
    table = comparison_table("beauty", {}, table5, table6)
    hybrid = table[table["source"] == "hybrid paper Table V"]
    assert list(zip(hybrid["metric"], hybrid["published"], hybrid["ours"], strict=True)) == [
        ("mrr@10", TABLE5[("beauty", "hybrid")][0], 0.25),
        ("ndcg@10", TABLE5[("beauty", "hybrid")][1], 0.3)]
    assert (hybrid["protocol"] == "linrec pop100 + fmlp uniform99").all()
    counts = table[table["source"] == "hybrid paper Table VI"]
    assert len(counts) == 4  # one row per category, from the paper block only
    assert dict(zip(counts["metric"], counts["published"], strict=True)) == {
        f"test users: {c}": float(n) for c, n in TABLE6["beauty"].items()}
    assert counts.loc[counts["metric"] == "test users: fmlp", "ours"].item() == 1.0
