"""The hybrid stage's jobs: stored aligned lists round-trip exactly; a gate with nothing to
learn stops with one message; the paper's protocols are known for every fused branch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec.hybrid.align import PAD, AlignedLists
from hybridrec.hybrid.aligned_file import aligned_protocols, read_aligned, write_aligned


def test_aligned_lists_round_trip_through_parquet(tmp_path):
    rng = np.random.default_rng(0)
    vocabulary = np.array([3, 8, 15, 21, 40, 77])
    lists = rng.permutation(np.tile(np.arange(6), (5, 2, 1)).reshape(-1, 6), axis=1)
    lists = lists.reshape(5, 2, 6)[..., :4].copy()
    lists[1, 0, 2:] = PAD  # a short list
    scores = np.where(lists == PAD, np.nan, -rng.random(lists.shape))
    aligned = AlignedLists(("linrec", "fmlp"), np.array([10, 11, 12, 13, 14]), vocabulary,
                           lists, scores, target=np.array([0, 1, 2, 3, 5]))
    write_aligned(aligned, {"linrec": "pop100", "fmlp": "uniform99"}, tmp_path / "a.parquet")
    back = read_aligned(tmp_path / "a.parquet", ["linrec", "fmlp"])
    assert aligned_protocols(tmp_path / "a.parquet") == {"linrec": "pop100", "fmlp": "uniform99"}
    # ids are re-indexed over the items that occur, so compare in original ids
    np.testing.assert_array_equal(back.vocabulary[back.target], vocabulary[aligned.target])
    np.testing.assert_array_equal(np.where(back.lists == PAD, -1, back.vocabulary[back.lists]),
                                  np.where(lists == PAD, -1, vocabulary[lists]))
    np.testing.assert_array_equal(back.scores, scores)
    np.testing.assert_array_equal(back.users, aligned.users)


def test_aligned_lists_read_to_a_depth_are_the_lists_heads(tmp_path):
    rng = np.random.default_rng(1)
    vocabulary = np.arange(100, 130)
    lists = np.stack([rng.permutation(30)[:12] for _ in range(8)]).reshape(4, 2, 12)
    lists[2, 1, 3:] = PAD  # shorter than the depth
    lists[0, 0, 7:] = PAD
    scores = np.where(lists == PAD, np.nan, -rng.random(lists.shape))
    aligned = AlignedLists(("linrec", "fmlp"), np.arange(4), vocabulary, lists, scores,
                           target=np.array([29, 0, 5, 7]))
    write_aligned(aligned, {"linrec": "full", "fmlp": "full"}, tmp_path / "a.parquet")
    head = read_aligned(tmp_path / "a.parquet", ["linrec", "fmlp"], depth=5)
    assert head.k == 5
    np.testing.assert_array_equal(np.where(head.lists == PAD, -1, head.vocabulary[head.lists]),
                                  np.where(lists[..., :5] == PAD, -1, vocabulary[lists[..., :5]]))
    np.testing.assert_array_equal(head.scores, scores[..., :5])
    np.testing.assert_array_equal(head.vocabulary[head.target], vocabulary[aligned.target])


def test_a_branch_that_never_wins_stops_the_gate_with_one_clear_message(tmp_path):
    from hybridrec.errors import HybridrecError
    from hybridrec.hybrid.features import FEATURES
    from hybridrec.jobs.shap import run_shap

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((50, len(FEATURES))), columns=list(FEATURES))
    frame["eligible"] = True
    frame["best_branch"] = 1  # fmlp is better for every user: linrec never wins
    features = tmp_path / "valid.parquet"
    frame.to_parquet(features)
    summary = tmp_path / "shap.json"
    with pytest.raises(HybridrecError) as error:
        run_shap(features_path=features, branches=["linrec", "fmlp"], seed=0, balanced=True,
                 summary_path=summary, figure_path=tmp_path / "fig.png", title="t")
    message = str(error.value)
    assert str(features) in message
    assert "fmlp is the better branch for every one of the 50 users" in message
    assert not summary.exists() and not (tmp_path / "fig.png").exists()


def test_the_paper_protocols_need_branches_whose_paper_protocol_is_known():
    import yaml

    from hybridrec.config import check_config
    from hybridrec.errors import ConfigError

    config = yaml.safe_load((Path(__file__).parents[1] / "config/config.yaml").read_text())
    config["hybrid"]["protocols"] = ["full", "paper"]
    check_config(config)  # linrec (pop100) and fmlp (uniform99)
    config["models"]["mine"] = {}
    config["hybrid"]["branches"] = ["linrec", "mine"]
    with pytest.raises(ConfigError, match=r"hybrid.protocols\[1\]: 'paper' .* not for \['mine'\]"):
        check_config(config)


def test_gate_features_are_the_papers_three_shaps_top_k_or_the_list_given(tmp_path):
    from hybridrec.io import write_json
    from hybridrec.jobs.gate_search import gate_features

    ranking = ["jaccard", "entropy", "length", "intersection", "unique_items", "max_freq_ratio"]
    write_json({"importance": {}, "ranking": ranking, "rows": 10}, tmp_path / "shap.json")
    assert gate_features("paper", None, None) == ["length", "unique_items", "entropy"]
    assert gate_features("shap", tmp_path / "shap.json", 2) == ["jaccard", "entropy"]
    assert gate_features(["jaccard", "length"], None, None) == ["jaccard", "length"]


@pytest.mark.parametrize("change, message", [
    (lambda h: h.update(features=["length", "entrpy"]),
     "hybrid.features[1]: unknown feature 'entrpy' (did you mean 'entropy'?)"),
    (lambda h: h.update(gate="random_forest", loss="focal"),
     "hybrid.loss: 'focal' trains the MLP gate only, but hybrid.gate is 'random_forest'"),
    (lambda h: h.update(variants={"trees": {"gate": "gradient_boosting", "loss": "focal"}}),
     "hybrid.variants.trees.loss: 'focal' trains the MLP gate only"),
    (lambda h: h.update(variants={"mine": {"features": ["jacard"]}}),
     "hybrid.variants.mine.features[0]: unknown feature 'jacard' (did you mean 'jaccard'?)"),
])
def test_hybrid_keys_are_checked_before_any_job_naming_the_key(change, message):
    import re

    import yaml

    from hybridrec.config import check_config
    from hybridrec.errors import ConfigError

    config = yaml.safe_load((Path(__file__).parents[1] / "config/config.yaml").read_text())
    change(config["hybrid"])
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(config)


def _search(run: Path, out: Path, trials: int = 6, **options):
    """One shard of a small search on the demo run's uniform99 validation rows."""
    from hybridrec.hybrid.search import SELECTIONS
    from hybridrec.jobs.gate_search import run_search_shard

    settings = {"features": "paper", "tie_label": "first", "rebalance": None, "gate": "mlp",
                "held_out": 0.1, "batch_size": 256, "keep_epoch": "best", "loss": "bce",
                **options}
    out.mkdir(parents=True, exist_ok=True)
    gates = {rule: out / f"gate_{rule}.pt" for rule in SELECTIONS}
    run_search_shard(aligned_path=run / "aligned/valid.parquet",
                     features_path=run / "features/valid.parquet", shap_path=run / "shap.json",
                     branches=["linrec", "fmlp"], protocol="uniform99", trials=trials, shard=0,
                     shards=1, seed=42, **settings, table_path=out / "trials.parquet",
                     gate_paths=gates)
    return pd.read_parquet(out / "trials.parquet"), gates


@pytest.mark.parametrize("option", [
    {"features": "shap", "shap_top_k": 2}, {"features": ["jaccard", "length"]},
    {"tie_label": "half"}, {"tie_label": "second"}, {"rebalance": 0.55},
    {"gate": "random_forest"}, {"gate": "gradient_boosting"},
    {"loss": "focal", "focal_gamma": 2.0}, {"batch_size": None, "keep_epoch": "last"}])
def test_each_gate_option_runs_on_the_demo_data_and_changes_what_it_should(demo_run, tmp_path,
                                                                           option):
    import json

    from hybridrec.hybrid.gate_file import load_gate
    from hybridrec.jobs.gate_search import gate_data

    run = demo_run / "results/hybrid/demo/uniform99"
    base, base_gates = _search(run, tmp_path / "default")
    table, gates = _search(run, tmp_path / "option", **option)
    default, changed = load_gate(base_gates["val_loss"]), load_gate(gates["val_loss"])
    assert default.gate.feature_names == ("length", "unique_items", "entropy")
    assert table["trial"].tolist() == base["trial"].tolist()
    key = next(iter(option))
    if key == "features":
        ranking = json.loads((run / "shap.json").read_text())["ranking"]
        expected = ranking[:2] if option[key] == "shap" else option[key]
        assert list(changed.gate.feature_names) == expected
    elif key == "gate":
        assert changed.kind == option["gate"] and changed.epoch is None
        assert "lr" not in changed.settings and "min_samples_leaf" in changed.settings
    else:
        assert changed.training[key] == option[key]
        assert changed.gate.feature_names == default.gate.feature_names
    if key in ("tie_label", "rebalance"):
        kwargs = {"tie_label": "first", "share": None}
        kwargs["tie_label" if key == "tie_label" else "share"] = option[key]
        first = gate_data(run / "aligned/valid.parquet", run / "features/valid.parquet",
                          ["linrec", "fmlp"], ["length"], 0.1, 42, "first", None, "demo")
        other = gate_data(run / "aligned/valid.parquet", run / "features/valid.parquet",
                          ["linrec", "fmlp"], ["length"], 0.1, 42, where="demo", **kwargs)
        if key == "tie_label":  # the demo has ties: their labels change, nothing else does
            assert not np.array_equal(other[0].labels, first[0].labels)
            assert (other[0].labels[:, 0] == {"half": 0.5, "second": 0.0}[option[key]]).any()
        else:  # the majority class is cut down to 55 % of the training rows
            assert other[2]["trained_on"] < first[2]["trained_on"] == other[2]["train"]
            largest = np.bincount(other[0].labels.argmax(axis=1)).max()
            assert largest / len(other[0].labels) == pytest.approx(0.55, abs=0.01)
    # every option changes the scores of the trials (the default rows differ somewhere)
    assert not np.allclose(table["val_loss"], base["val_loss"])


@pytest.mark.long
def test_a_variant_reruns_only_its_search_and_fusion_and_joins_the_variants_table(demo_run,
                                                                                  tmp_path):
    import shutil

    from workflow_helpers import DEMO, ran_rules, snakemake

    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)  # copy2 keeps the mtimes Snakemake reads
    (workdir / "variants.yaml").write_text(  # one variant: each one is a search per protocol
        "hybrid:\n  variants:\n"
        "    forest: {gate: random_forest, tie_label: half, selection: mrr}\n")
    table = "results/tables/hybrid_variants.csv"
    dry = snakemake(workdir, table, "-n", "--cores", "2", *DEMO, "variants.yaml")
    assert dry.returncode == 0, dry.stderr[-3000:]
    ran = set(ran_rules(dry))
    assert ran == {"variant_gate_search_shard", "variant_gate_search_gather", "variant_fusion",
                   "hybrid_variants_table"}, ran
    result = snakemake(workdir, table, "--cores", "2", *DEMO, "variants.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    rows = pd.read_csv(workdir / table)
    assert list(zip(rows["protocol"], rows["variant"], strict=True)) == [
        (p, v) for p in ("full", "uniform99") for v in ("default", "forest")]
    forest = rows[rows["variant"] == "forest"]
    assert forest["gate"].tolist() == ["random_forest"] * 2
    assert forest["selection"].tolist() == ["mrr"] * 2
    assert forest["overrides"].tolist() == ["gate=random_forest, tie_label=half, "
                                            "selection=mrr"] * 2
    default = rows[rows["variant"] == "default"]
    table5 = pd.read_csv(demo_run / "results/tables/table5.csv")
    hybrid = table5[table5["method"] == "hybrid"]
    np.testing.assert_array_equal(default["mrr10"], hybrid["mrr10"])  # the default run's rows
    for column in ("alpha_mean", "mrr10", "ndcg10", "mrr10_diff", "mrr10_diff_low"):
        assert rows[column].notna().all(), column
    variant = workdir / "results/hybrid/demo/full/variants/forest"
    from hybridrec.hybrid.gate_file import load_gate

    stored = load_gate(variant / "search/gate.pt")
    assert (stored.kind, stored.selection, stored.training["tie_label"]) == (
        "random_forest", "mrr", "half")


def test_a_variant_with_its_own_branches_aligns_its_own_lists_under_its_protocols(demo_run,
                                                                                   tmp_path):
    """hybrid.variants.<name>.branches: the variant aligns and featurises its own branches (in
    its own order) and runs only under its protocols; the configured run's lists stay."""
    import shutil

    from workflow_helpers import DEMO, ran_rules, snakemake

    from hybridrec.hybrid.gate_file import load_gate

    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)
    (workdir / "variants.yaml").write_text(
        "hybrid:\n  variants:\n    swapped: {branches: [fmlp, linrec], protocols: [full]}\n")
    table = "results/tables/hybrid_variants.csv"
    dry = snakemake(workdir, table, "-n", "--cores", "2", *DEMO, "variants.yaml")
    assert dry.returncode == 0, dry.stderr[-3000:]
    ran = set(ran_rules(dry))
    assert ran == {"variant_align", "variant_features", "variant_gate_search_shard",
                   "variant_gate_search_gather", "variant_fusion", "hybrid_variants_table"}, ran
    result = snakemake(workdir, table, "--cores", "2", *DEMO, "variants.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    rows = pd.read_csv(workdir / table)
    assert list(zip(rows["protocol"], rows["variant"], strict=True)) == [
        ("full", "default"), ("full", "swapped"), ("uniform99", "default")]
    variant = workdir / "results/hybrid/demo/full/variants/swapped"
    assert load_gate(variant / "search/gate.pt").branches == ("fmlp", "linrec")
    aligned = pd.read_parquet(variant / "aligned/test.parquet")
    default = pd.read_parquet(workdir / "results/hybrid/demo/full/aligned/test.parquet")
    pd.testing.assert_series_equal(aligned["fmlp_items"], default["fmlp_items"])
    assert not (workdir / "results/hybrid/demo/uniform99/variants/swapped").exists()
