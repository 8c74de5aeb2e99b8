"""The real DAG: dry run of the default config, lint, the demo run up to Table V, partial reruns.

The demo run (the session fixture ``demo_run`` in conftest.py) happens once per session in a
scratch copy of the workflow, so the repository's own results/ is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from workflow_helpers import DEMO, REPO, copy_workflow, dry_run_jobs, ran_rules, snakemake

from hybridrec.codehash import code_hash
from hybridrec.evaluation.metrics import per_user_metrics
from hybridrec.io import file_checksum
from hybridrec.models.files import read_model, text_digest
from hybridrec.provenance import read_provenance
from hybridrec.text.embeddings import load_item_embeddings

pytestmark = pytest.mark.integration


def test_default_config_dry_run_lists_the_whole_dag(tmp_path):
    result = snakemake(copy_workflow(tmp_path), "-n", "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in ("download", "extract", "preprocess", "train", "evaluate", "align", "features",
                 "shap", "gate_search_shard", "gate_search_gather", "fusion", "hybrid_tables",
                 "table4", "model_tables"):
        assert f"rule {rule}:" in result.stdout, f"{rule} missing from the dry run"


def test_lint_is_clean():
    result = snakemake(REPO, "--lint")
    assert result.returncode == 0 and "good condition" in result.stdout + result.stderr


def test_bad_config_is_rejected_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text("gate_search:\n  trials: many\n")
    result = snakemake(workdir, "-n", "--configfile", "config/demo.yaml", "bad.yaml")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "['gate_search']['trials']" in output and "integer" in output
    assert not (workdir / "results").exists()


def test_demo_tables_exist_and_name_their_protocol(demo_run):
    table4 = pd.read_csv(demo_run / "results/tables/table4.csv")
    assert table4.loc[0, "dataset"] == "demo" and table4.loc[0, "users"] > 900
    table3 = pd.read_csv(demo_run / "results/tables/table3.csv")
    assert set(table3["model"]) == {"linrec", "fmlp"}
    assert set(table3["protocol"]) == {"full"}  # evaluation.protocol: what training validates on
    metrics = json.loads((demo_run / "results/metrics/demo/fmlp.json").read_text())
    assert set(metrics["splits"]["test"]) == {"full", "uniform99", "pop100"}
    assert metrics["export_protocols"] == ["full", "uniform99"]
    names = ["learning_curve_demo_fmlp"] + [
        f"{figure}_demo_{protocol}" for figure in ("fig4_shap", "fig6_alpha", "search_landscape")
        for protocol in ("full", "uniform99")]
    for name in names:
        assert (demo_run / f"results/figures/{name}.png").stat().st_size > 1000


def test_the_hybrid_runs_once_per_protocol_from_that_protocols_exports(demo_run):
    from hybridrec.evaluation.export import read_predictions

    for protocol in ("full", "uniform99"):
        root = demo_run / "results/hybrid/demo" / protocol
        for name in ("aligned/test.parquet", "features/valid.parquet", "search/trials.parquet",
                     "search/gate.pt", "search/study.db", "evaluation.json", "fused_test.parquet"):
            assert (root / name).is_file(), f"{protocol}: {name} missing"
        export = demo_run / f"results/predictions/demo/fmlp/{protocol}/test.parquet"
        _, meta = read_predictions(export)
        assert meta["protocol"] == protocol and int(meta["k"]) == 100  # deeper than the top 10
        evaluation = json.loads((root / "evaluation.json").read_text())
        assert evaluation["protocols"] == {"linrec": protocol, "fmlp": protocol}
        rows = evaluation["gate"]["rows"]
        features = pd.read_parquet(root / "features/valid.parquet")
        assert rows["validation_users"] == len(features)
        assert rows["eligible"] == features["eligible"].sum() == rows["train"] + rows["held_out"]
        exact = evaluation["score_fusion"]
        assert exact["depth"] == 100 and 0 <= exact["exact_users"] <= exact["users"]
    # sampled candidates: all 100 listed, so score fusion is exact for every user
    uniform = json.loads((demo_run / "results/hybrid/demo/uniform99/evaluation.json").read_text())
    assert uniform["score_fusion"]["exact_users"] == uniform["users"]
    # under full ranking fewer users have a hit in either top 10: fewer gate rows
    full = json.loads((demo_run / "results/hybrid/demo/full/evaluation.json").read_text())
    assert full["gate"]["rows"]["eligible"] < uniform["gate"]["rows"]["eligible"]


def test_table5_gate_row_is_reproduced_from_the_gate_file_alone(demo_run):
    from hybridrec.jobs.fusion import hybrid_row

    table = pd.read_csv(demo_run / "results/tables/table5.csv")
    for protocol in ("full", "uniform99"):
        root = demo_run / "results/hybrid/demo" / protocol
        row = hybrid_row(root / "search/gate.pt", root / "aligned/test.parquet",
                         root / "features/test.parquet", fusion_seeds=[0, 1, 2, 3, 4])
        ours = table[(table["protocol"] == protocol) & (table["method"] == "hybrid")].iloc[0]
        assert row["mrr@10"] == pytest.approx(ours["mrr10"], abs=1e-15)
        assert row["ndcg@10"] == pytest.approx(ours["ndcg10"], abs=1e-15)
        assert row["hr@10"] == pytest.approx(ours["hr10"], abs=1e-15)


def _list_metrics(lists: pd.Series, target: pd.Series) -> dict[str, np.ndarray]:
    """MRR@10, NDCG@10, HR@10 per row from a list column and the target (rank 11 = miss)."""
    ranks = np.array([list(items[:10]).index(t) + 1 if t in list(items[:10]) else 11
                      for items, t in zip(lists, target, strict=True)])
    return per_user_metrics(ranks)


@pytest.mark.parametrize("protocol", ["full", "uniform99"])
def test_table5_matches_a_recomputation_from_the_lists(demo_run, protocol):
    table = pd.read_csv(demo_run / "results/tables/table5.csv")
    assert list(table.columns) == ["dataset", "protocol", "method", "lists", "mrr10", "ndcg10",
                                   "hr10", "mrr10_std", "ndcg10_std", "paper_mrr10",
                                   "paper_ndcg10", "paper_protocol", "note"]
    assert table["protocol"].tolist() == ["full"] * 3 + ["uniform99"] * 3  # full ranking first
    assert table["method"].tolist() == ["linrec", "fmlp", "hybrid"] * 2
    numbers = table[["mrr10", "ndcg10", "hr10", "mrr10_std", "ndcg10_std"]].to_numpy()
    assert ((numbers >= 0) & (numbers <= 1)).all()
    assert table["paper_mrr10"].isna().all()  # demo is not a paper dataset

    rows = table[table["protocol"] == protocol].set_index("method")
    assert (rows["lists"] == protocol).all()
    root = demo_run / "results/hybrid/demo" / protocol
    aligned = pd.read_parquet(root / "aligned/test.parquet")
    for branch in ("linrec", "fmlp"):
        values = _list_metrics(aligned[f"{branch}_items"], aligned["target"])
        assert values["mrr@10"].mean() == pytest.approx(rows.loc[branch, "mrr10"], abs=1e-12)
        assert values["ndcg@10"].mean() == pytest.approx(rows.loc[branch, "ndcg10"], abs=1e-12)
        assert values["hr@10"].mean() == pytest.approx(rows.loc[branch, "hr10"], abs=1e-12)

    fused = pd.read_parquet(root / "fused_test.parquet")
    per_seed = pd.DataFrame([
        {key: values.mean() for key, values in _list_metrics(g["items"], g["target"]).items()}
        for _, g in fused.groupby("seed")])
    assert fused.groupby("seed")["user"].nunique().eq(len(aligned)).all()
    assert all(len(set(items)) == len(items) == 10 for items in fused["items"])
    assert per_seed["mrr@10"].mean() == pytest.approx(rows.loc["hybrid", "mrr10"], abs=1e-12)
    assert per_seed["ndcg@10"].mean() == pytest.approx(rows.loc["hybrid", "ndcg10"], abs=1e-12)
    assert per_seed["mrr@10"].std() == pytest.approx(rows.loc["hybrid", "mrr10_std"], abs=1e-12)


def test_table6_counts_every_test_user_once_per_protocol(demo_run):
    table6 = pd.read_csv(demo_run / "results/tables/table6.csv")
    assert list(table6.columns) == ["dataset", "protocol", "split", "category", "users",
                                    "paper_users", "paper_protocol"]
    users = pd.read_csv(demo_run / "results/tables/table4.csv")["users"][0]
    for protocol in ("full", "uniform99"):
        for split in ("valid", "test"):  # every user once in each split's counts
            rows = table6[(table6["protocol"] == protocol) & (table6["split"] == split)]
            assert rows["category"].tolist() == ["linrec", "fmlp", "both", "neither"]
            assert rows["users"].sum() == users
    assert table6["paper_users"].isna().all()  # demo is not a paper dataset


def test_an_unchanged_rerun_has_nothing_to_do(demo_run):
    result = snakemake(demo_run, "-n", "--configfile", "config/demo.yaml")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_naming_a_datasets_own_models_reruns_nothing_but_the_config_page(demo_run):
    """datasets.<name>.models listing the run's models (in another order) changes no data, model
    or table: preprocessing never reads it, and the tables key datasets by name."""
    (demo_run / "named.yaml").write_text("datasets:\n  demo:\n    models: [fmlp, linrec]\n")
    result = snakemake(demo_run, "-n", *DEMO, "named.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(ran_rules(result)) <= {"report_pages", "all"}, ran_rules(result)


def test_a_new_search_budget_reruns_only_the_search_and_what_follows(demo_run):
    (demo_run / "budget.yaml").write_text("gate_search:\n  trials: 40\n")
    result = snakemake(demo_run, "-n", "--configfile", "config/demo.yaml", "budget.yaml")
    assert result.returncode == 0
    jobs = result.stdout
    for rule in ("gate_search_shard", "gate_search_gather", "fusion", "hybrid_tables"):
        assert f"rule {rule}:" in jobs
    for rule in ("preprocess", "train", "evaluate", "align", "features", "shap"):
        assert f"rule {rule}:" not in jobs


def test_a_new_learning_rate_retrains_that_model_only(demo_run):
    (demo_run / "lr.yaml").write_text("models:\n  linrec:\n    lr: 0.002\n")
    jobs = dry_run_jobs(demo_run, "lr.yaml")
    assert ("train", "dataset=demo, model=linrec") in jobs
    assert ("evaluate", "dataset=demo, model=linrec") in jobs
    assert not [job for job in jobs if "model=fmlp" in job[1]], jobs
    rules = {rule for rule, _ in jobs}
    assert {"align", "features", "gate_search_shard", "fusion", "hybrid_tables",
            "model_tables"} <= rules
    assert "preprocess" not in rules and "table4" not in rules


def test_adding_a_dataset_runs_only_that_datasets_chain(demo_run):
    (demo_run / "more.yaml").write_text(
        "run:\n  datasets: [demo, demo2]\n"
        "datasets:\n  demo2:\n    format: demo\n    demo: {users: 300, items: 400, seed: 11}\n")
    jobs = dry_run_jobs(demo_run, "more.yaml")
    per_dataset = [(rule, wc) for rule, wc in jobs if "dataset=" in wc]
    assert per_dataset and all("dataset=demo2" in wc for _, wc in per_dataset), per_dataset
    assert {"preprocess", "train", "evaluate", "align", "fusion"} <= {r for r, _ in per_dataset}
    # the tables that list every dataset are rebuilt (and the report's pages, which show the
    # config); nothing of demo's own chain is
    assert {rule for rule, wc in jobs if not wc} <= {"table4", "model_tables", "hybrid_tables",
                                                     "hybrid_variants_table", "report_pages",
                                                     "all"}


def test_a_dataset_runs_only_its_own_models_and_a_variant_only_its_own_datasets(demo_run):
    """datasets.<name>.models: SASRec joins the run on demo alone, and so does a three-branch
    hybrid variant (hybrid.variants.<name>.datasets); demo2 keeps to the hybrid's branches."""
    (demo_run / "scoped.yaml").write_text(
        "run:\n  datasets: [demo, demo2]\n  models: [linrec, fmlp, sasrec]\n"
        "datasets:\n  demo2:\n    format: demo\n    demo: {users: 300, items: 400, seed: 11}\n"
        "    models: [fmlp, linrec]\n"
        "hybrid:\n  variants:\n"
        "    three: {branches: [linrec, fmlp, sasrec], protocols: [full], datasets: [demo]}\n")
    jobs = dry_run_jobs(demo_run, "scoped.yaml")
    assert {wc for rule, wc in jobs if rule == "train"} == {
        "dataset=demo, model=sasrec", "dataset=demo2, model=linrec", "dataset=demo2, model=fmlp"}
    assert not [wc for _, wc in jobs if "dataset=demo2, model=sasrec" in wc], jobs
    variant_runs = {wc.split(", ")[0] for rule, wc in jobs if rule == "variant_fusion"}
    assert variant_runs == {"dataset=demo"}, jobs


def _run_with_edited_package(demo_run, tmp_path, module: str, edit) -> tuple[Path, dict[str, str]]:
    """A copy of the finished demo run and of the package, ``module``'s source edited; the env
    that makes Snakemake's jobs (and its own code hashes) use that package."""
    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)  # copy2: outputs keep their mtimes
    package = tmp_path / "src"
    shutil.copytree(REPO / "src", package, ignore=shutil.ignore_patterns("__pycache__"))
    path = package / "hybridrec" / module
    path.write_text(edit(path.read_text()))
    return workdir, {"PYTHONPATH": str(package)}


def test_editing_fusion_code_reruns_fusion_and_the_tables_never_training(demo_run, tmp_path):
    workdir, env = _run_with_edited_package(
        demo_run, tmp_path, "hybrid/fusion.py", lambda text: text + "\n_EDITED = True\n")
    rules = {rule for rule, _ in dry_run_jobs(workdir, env=env)}
    assert {"fusion", "hybrid_tables"} <= rules, rules
    assert not {"preprocess", "train", "evaluate", "model_tables", "table4"} & rules, rules


def test_editing_fmlp_reruns_fmlp_and_what_follows_never_linrec(demo_run, tmp_path):
    workdir, env = _run_with_edited_package(
        demo_run, tmp_path, "models/fmlp.py", lambda text: text + "\n_EDITED = True\n")
    jobs = dry_run_jobs(workdir, env=env)
    assert ("train", "dataset=demo, model=fmlp") in jobs
    assert ("evaluate", "dataset=demo, model=fmlp") in jobs
    assert not [job for job in jobs if "model=linrec" in job[1]], jobs
    rules = {rule for rule, _ in jobs}
    assert {"align", "fusion", "hybrid_tables", "model_tables"} <= rules
    assert "preprocess" not in rules


def test_a_docstring_edit_reruns_nothing(demo_run, tmp_path):
    workdir, env = _run_with_edited_package(
        demo_run, tmp_path, "models/fmlp.py",
        lambda text: text.replace('"""', '"""Reworded. ', 1))
    result = snakemake(workdir, "-n", "--configfile", "config/demo.yaml", env=env)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize("relative", [
    "results/predictions/demo/fmlp/full/test.parquet",
    "results/metrics/demo/linrec.json",
    "results/tables/table5.csv",
    "results/figures/fig6_alpha_demo_full.png",
    "results/models/demo/fmlp/model.pt",
    "results/models/demo/linrec/history.parquet",
    "results/data/demo/split/train.parquet",
])
def test_every_result_file_type_carries_its_provenance(demo_run, relative):
    record = read_provenance(demo_run / relative)
    rule = record["rule"]
    script = REPO / "workflow" / "scripts" / f"{RULE_SCRIPTS.get(rule, rule)}.py"
    model = record["wildcards"].get("model") if rule in ("train", "evaluate") else None
    assert record["params"]["code"] == code_hash(script, model)
    assert record["packages"]["torch"] == torch.__version__
    assert {"snakemake", "numpy", "hybridrec"} <= set(record["packages"])
    if rule in ("train", "evaluate"):
        assert record["device"] == "cpu" and record["threads"] >= 1
        assert rule == "evaluate" or record["params"]["seed"] == 42


RULE_SCRIPTS = {"align": "hybrid_align", "fusion": "hybrid_fusion", "shap": "hybrid_shap",
                "features": "hybrid_features"}


def test_the_results_bundle_is_written_from_the_finished_run_alone(demo_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)
    result = snakemake(workdir, "docs/results/demo", "--cores", "1", "--configfile",
                       "config/demo.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    ran = ran_rules(result)
    assert ran == ["results_bundle"], ran  # nothing upstream was stale
    bundle = workdir / "docs/results/demo"
    record = json.loads((bundle / "provenance.json").read_text())
    assert set(record["training"]) == {"linrec", "fmlp"}
    assert record["training"]["fmlp"]["epochs_run"] >= record["training"]["fmlp"]["best_epoch"]
    assert record["code"]["train[dataset=demo,model=fmlp]"] == code_hash(
        REPO / "workflow/scripts/train.py", "fmlp")
    table5 = pd.read_csv(bundle / "tables/table5.csv")
    assert set(table5["dataset"]) == {"demo"}
    assert (bundle / "tables/table5.md").read_text().startswith("| dataset |")
    assert (bundle / "figures/learning_curve_demo_fmlp.png").stat().st_size > 1000
    assert "## Training" in (bundle / "README.md").read_text()
    # demo is none of the papers' datasets: the comparison is empty and the README says why
    assert pd.read_csv(bundle / "comparison.csv").empty
    assert "No published figure applies: demo" in (bundle / "README.md").read_text()


def test_a_run_from_a_bundle_s_weights_trains_nothing_and_reproduces_its_metrics(demo_run,
                                                                                  tmp_path):
    """datasets.demo.weights_from: each model comes from the bundle (import_weights, no train
    job); evaluation from those weights gives the bundle's metrics, and every downstream file
    names the weights it descends from."""
    published = tmp_path / "published"
    shutil.copytree(demo_run, published, symlinks=True)
    result = snakemake(published, "docs/results/demo", "--cores", "1", *DEMO)
    assert result.returncode == 0, result.stderr[-3000:]
    bundle = published / "docs/results/demo"
    record = json.loads((bundle / "provenance.json").read_text())
    assert set(record["weights"]) == {"linrec", "fmlp"}
    for name, weights in record["weights"].items():
        assert file_checksum(bundle / weights["file"]) == f"sha256:{weights['sha256']}", name

    fresh = copy_workflow(tmp_path / "fresh")
    (fresh / "from.yaml").write_text(f"datasets:\n  demo:\n    weights_from: {bundle}\n")
    targets = ["results/metrics/demo/linrec.json", "results/metrics/demo/fmlp.json",
               "results/hybrid/demo/full/aligned/test.parquet"]
    result = snakemake(fresh, *targets, "--cores", "2", *DEMO, "from.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    ran = set(ran_rules(result))
    assert "import_weights" in ran and "train" not in ran, ran
    for name in ("linrec", "fmlp"):
        ours = json.loads((fresh / f"results/metrics/demo/{name}.json").read_text())
        theirs = json.loads((bundle / f"metrics/{name}.json").read_text())
        assert ours["splits"] == theirs["splits"] and ours["training"] == theirs["training"]
        source = f"{bundle / 'models' / name}.pt sha256:{record['weights'][name]['sha256']}"
        assert source in ours["provenance"]["params"]["upstream"]["weights_from"]
    aligned = read_provenance(fresh / "results/hybrid/demo/full/aligned/test.parquet")
    assert len(aligned["params"]["upstream"]["weights_from"]) == 2  # both branches' weights

    # a setting the weights were not trained with is refused before any job, naming the key
    (fresh / "lr.yaml").write_text("models:\n  linrec:\n    lr: 0.005\n")
    result = snakemake(fresh, "-n", *targets, *DEMO, "from.yaml", "lr.yaml")
    assert result.returncode != 0
    assert "models.linrec.lr: 0.005 here, 0.001 in the bundle" in result.stdout + result.stderr


@pytest.mark.parametrize("evaluation, drawn", [
    ("", {"protocol=uniform99", "protocol=pop100"}),
    ("evaluation: {protocol: uniform99, protocols: [full, uniform99]}\n", {"protocol=uniform99"}),
    # the hybrid's protocols count too: its default [full, uniform99] draws uniform99
    ("evaluation: {protocol: full, protocols: [full]}\n", {"protocol=uniform99"}),
    ("evaluation: {protocol: full, protocols: [full]}\nhybrid: {protocols: [full]}\n", set()),
])
def test_only_the_protocols_asked_for_are_drawn(tmp_path, evaluation, drawn):
    workdir = copy_workflow(tmp_path)
    # (the demo at its schema minimum, 120 items, is too small for 99 negatives: a config that
    # asks for a sampled protocol then fails before any job, tests/test_config.py)
    (workdir / "small.yaml").write_text("datasets:\n  demo:\n    format: demo\n" + evaluation)
    jobs = dry_run_jobs(workdir, "small.yaml")
    candidates = {wc.split(", ")[1] for rule, wc in jobs if rule == "candidates"}
    assert candidates == drawn
    assert ("preprocess", "dataset=demo") in jobs


def test_a_deleted_intermediate_is_rebuilt_by_force_and_then_reruns_its_readers(demo_run,
                                                                               tmp_path):
    """Documented in README ("Damaged or deleted intermediates")."""
    workdir = tmp_path / "copy"
    shutil.copytree(demo_run, workdir, symlinks=True)  # copy2 keeps the mtimes Snakemake reads
    deleted = "results/data/demo/candidates/test.pop100.parquet"
    (workdir / deleted).unlink()
    # Snakemake does not rebuild a missing intermediate whose readers are up to date ...
    assert "Nothing to be done" in snakemake(workdir, "-n", *DEMO).stdout
    # ... but --summary lists it, and --force rebuilds exactly that job
    summary = snakemake(workdir, "--summary", *DEMO).stdout
    assert any(line.startswith(deleted) and "\tmissing\t" in line for line in summary.splitlines())
    assert ran_rules(snakemake(workdir, "-n", "--force", deleted, *DEMO)) == ["candidates"]
    # a LinRec change rebuilds it on the way (its job writes both splits, and training selects
    # under pop100 on the validation file) and schedules FMLP-Rec's jobs that read it; never
    # preprocessing or the other protocol's candidates
    (workdir / "lr.yaml").write_text("models:\n  linrec:\n    lr: 0.002\n")
    jobs = dry_run_jobs(workdir, "lr.yaml")
    assert ("candidates", "dataset=demo, protocol=pop100") in jobs
    assert ("evaluate", "dataset=demo, model=fmlp") in jobs
    assert ("candidates", "dataset=demo, protocol=uniform99") not in jobs
    assert "preprocess" not in dict(jobs)


@pytest.mark.long
def test_every_model_and_a_three_branch_hybrid_run_on_demo(demo_run, tmp_path):
    """config/demo-all.yaml on top of the finished two-branch demo: SASRec, Mamba4Rec and M2Rec
    train (M2Rec on the demo's item text), the hybrid reruns with three branches, and the two
    branches' own rows are those of the two-branch run.

    What runs is the DAG, not a study: the three added models train one epoch each and the
    three-branch gate search has 20 trials (test.yaml, layered last)."""
    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)
    (workdir / "test.yaml").write_text(
        "models:\n  sasrec: {epochs: 1}\n  mamba4rec: {epochs: 1}\n  m2rec: {epochs: 1}\n"
        "gate_search: {trials: 20}\n")
    result = snakemake(workdir, "results/tables/table5.csv", "results/tables/table3.csv",
                       "--cores", "2", "--configfile", "config/demo.yaml",
                       "config/demo-all.yaml", "test.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    table3 = pd.read_csv(workdir / "results/tables/table3.csv")
    assert set(table3["model"]) == {"linrec", "fmlp", "sasrec", "mamba4rec", "m2rec"}
    m2rec = read_model(workdir / "results/models/demo/m2rec/model.pt")
    text = load_item_embeddings(workdir / "results/text/demo/item_embeddings.parquet",
                                m2rec.num_items)
    assert text[1:].abs().sum() > 0 and m2rec.item_text == text_digest(text)  # trained on it
    three = pd.read_csv(workdir / "results/tables/table5.csv")
    two = pd.read_csv(demo_run / "results/tables/table5.csv")
    for protocol in ("full", "uniform99"):
        rows = three[three["protocol"] == protocol]
        assert {"linrec", "fmlp", "m2rec", "hybrid"} <= set(rows["method"]), rows
        for branch in ("linrec", "fmlp"):
            ours = rows[rows["method"] == branch][["mrr10", "ndcg10", "hr10"]].to_numpy()
            before = two[(two["protocol"] == protocol) & (two["method"] == branch)][
                ["mrr10", "ndcg10", "hr10"]].to_numpy()
            np.testing.assert_array_equal(ours, before)
    for branch in ("linrec", "fmlp"):  # never retrained for the third branch
        assert (workdir / f"results/models/demo/{branch}/model.pt").read_bytes() == \
            (demo_run / f"results/models/demo/{branch}/model.pt").read_bytes()


def test_a_touched_input_with_the_same_content_reruns_nothing(tmp_path):
    """The workflow profile's checksum limit covers raw datasets over Snakemake's 1 MB default:
    a fresh copy of ../shared (new modification times, same bytes) retrains nothing, and a
    changed file still reruns its readers."""
    (tmp_path / "Snakefile").write_text(
        'rule copy:\n    input: "raw.txt"\n    output: "out.txt"\n'
        '    shell: "cp {input} {output}"\n')
    raw = tmp_path / "raw.txt"
    raw.write_bytes(np.random.default_rng(0).bytes(2_000_000))  # over Snakemake's 1 MB default
    profile = ("--workflow-profile", str(REPO / "profiles/default"), "--cores", "1")
    assert snakemake(tmp_path, *profile).returncode == 0
    later = (tmp_path / "out.txt").stat().st_mtime + 60
    os.utime(raw, (later, later))
    assert "Nothing to be done" in snakemake(tmp_path, "-n", *profile).stdout
    raw.write_bytes(raw.read_bytes()[:-1] + b"x")
    assert "updated input files" in snakemake(tmp_path, "-n", *profile).stdout
