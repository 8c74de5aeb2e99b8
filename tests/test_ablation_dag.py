"""The ablation table through the real DAG: two M2Rec variants under two seeds on a small demo,
beside LinRec's own run (one epoch each, in a scratch copy of the workflow)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch
from workflow_helpers import DEMO, REPO, copy_workflow, dry_run_jobs, ran_rules, snakemake

from hybridrec.codehash import code_hash
from hybridrec.models.files import read_model
from hybridrec.provenance import read_provenance

pytestmark = pytest.mark.integration

# A small demo (200 users, 500 items), short windows, one epoch: the DAG in about a minute.
ABLATION = """
datasets:
  demo:
    demo: {users: 200}
evaluation:
  protocols: [full, uniform99]
training:
  threads: 1
models:
  linrec: {epochs: 1}
  m2rec: {max_len: 10, hidden_size: 16, d_state: 8, epochs: 1}
ablations:
  seeds: [1, 2]
  variants:
    m2rec_no_text: {model: m2rec, text: false}
    m2rec_no_fft: {model: m2rec, fft: false, lr: 0.001}   # lr as the base's: no override
  baselines: [linrec]
"""
TABLE = "results/tables/ablation/demo.csv"


def _weights(path) -> dict[str, torch.Tensor]:
    saved = read_model(path)
    return saved.weights[saved.epoch_of()]


@pytest.mark.long
def test_the_ablation_table_lists_every_variant_over_its_seeds_beside_the_baseline(tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "ablation.yaml").write_text(ABLATION)
    result = snakemake(workdir, TABLE, "--cores", "1", *DEMO, "ablation.yaml")
    assert result.returncode == 0, result.stderr[-4000:]

    table = pd.read_csv(workdir / TABLE)
    assert table[["protocol", "name", "model", "n"]].values.tolist() == [
        [protocol, name, model, n] for protocol in ("full", "uniform99")
        for name, model, n in (("m2rec_no_text", "m2rec", 2), ("m2rec_no_fft", "m2rec", 2),
                               ("linrec", "linrec", 1))]
    assert table["overrides"].fillna("").tolist()[:3] == ["text=false", "fft=false", ""]
    runs = {name: json.loads((workdir / f"results/metrics/demo/{name}.json").read_text())
            for name in ("m2rec_no_text.s1", "m2rec_no_text.s2", "linrec")}
    for protocol in ("full", "uniform99"):
        row = table[(table["protocol"] == protocol) & (table["name"] == "m2rec_no_text")].iloc[0]
        values = [runs[f"m2rec_no_text.s{seed}"]["splits"]["test"][protocol]["ndcg@10"]
                  for seed in (1, 2)]
        assert row["ndcg@10_mean"] == pytest.approx(sum(values) / 2, abs=1e-12)
        assert row["ndcg@10_std"] == pytest.approx(pd.Series(values).std(), abs=1e-12)
        baseline = table[(table["protocol"] == protocol) & (table["name"] == "linrec")].iloc[0]
        assert baseline["hr@10_mean"] == runs["linrec"]["splits"]["test"][protocol]["hr@10"]
        assert pd.isna(baseline["hr@10_std"])
    assert "±" in (workdir / "results/tables/ablation/demo.md").read_text()

    # a run is its base model with the overrides and its seed, under the base model's code
    models = workdir / "results/models/demo"
    no_text = read_model(models / "m2rec_no_text.s1/model.pt")
    assert no_text.name == "m2rec" and no_text.architecture["text"] is False
    assert no_text.item_text is None  # no text read, none recorded
    no_fft = read_model(models / "m2rec_no_fft.s1/model.pt")
    assert no_fft.architecture["fft"] is False and no_fft.item_text is not None
    record = read_provenance(models / "m2rec_no_fft.s2/model.pt")
    assert record["params"]["seed"] == 2
    assert record["params"]["code"] == code_hash(REPO / "workflow/scripts/train.py", "m2rec")
    assert (workdir / "results/predictions/demo/m2rec_no_fft.s2/uniform99/test.parquet").exists()

    # two seeds give different weights; the same seed, trained again from scratch, the same bits
    first, second = (_weights(models / f"m2rec_no_fft.s{seed}/model.pt") for seed in (1, 2))
    # the same frozen text, recorded by its digest (the weights do not carry it)
    assert "item_text" not in first
    assert (read_model(models / "m2rec_no_fft.s2/model.pt").item_text == no_fft.item_text)
    assert not torch.equal(first["embedding.item_embeddings.weight"],
                           second["embedding.item_embeddings.weight"])
    shutil.rmtree(models / "m2rec_no_fft.s1")
    again = snakemake(workdir, "results/models/demo/m2rec_no_fft.s1/model.pt", "--cores", "1",
                      *DEMO, "ablation.yaml")
    assert again.returncode == 0, again.stderr[-4000:]
    retrained = _weights(models / "m2rec_no_fft.s1/model.pt")
    assert retrained.keys() == first.keys()
    assert all(torch.equal(retrained[key], first[key]) for key in first)

    # the bundle publishes the table and each run's weights and metrics beside the models'
    published = snakemake(workdir, "docs/results/demo", "--cores", "1", *DEMO, "ablation.yaml")
    assert published.returncode == 0, published.stderr[-4000:]
    bundle = workdir / "docs/results/demo"
    assert pd.read_csv(bundle / "tables/ablation.csv").equals(pd.read_csv(workdir / TABLE))
    assert "±" in (bundle / "tables/ablation.md").read_text()
    record = json.loads((bundle / "provenance.json").read_text())
    runs = {f"{variant}.s{seed}" for variant in ("m2rec_no_text", "m2rec_no_fft")
            for seed in (1, 2)}
    assert set(record["weights"]) == set(record["training"]) == {"linrec", "fmlp", *runs}
    assert read_model(bundle / "models/m2rec_no_fft.s1.pt").architecture["fft"] is False
    training = (bundle / "README.md").read_text().split("## Training\n")[1].split("\n#")[0]
    named = [row.split(" | ")[0].removeprefix("| ") for row in training.splitlines()
             if row.startswith("| ")][1:]  # the rows under the header
    assert sorted(named) == sorted({"linrec", "fmlp", *runs}), training  # each run by its name
    assert json.loads((bundle / "metrics/m2rec_no_text.s2.json").read_text()) == json.loads(
        (workdir / "results/metrics/demo/m2rec_no_text.s2.json").read_text())

    # and a run from the bundle (datasets.demo.weights_from) makes the same table, training nothing
    clone = copy_workflow(tmp_path / "clone")
    (clone / "ablation.yaml").write_text(ABLATION)
    (clone / "from-bundle.yaml").write_text(f"datasets: {{demo: {{weights_from: {bundle}}}}}\n")
    imported = snakemake(clone, TABLE, "--cores", "1", *DEMO, "ablation.yaml", "from-bundle.yaml")
    assert imported.returncode == 0, (imported.stdout + imported.stderr)[-4000:]
    ran = ran_rules(imported)
    assert "train" not in ran and ran.count("import_weights") == 5, ran  # linrec, 4 runs
    assert pd.read_csv(clone / TABLE).equals(pd.read_csv(workdir / TABLE))


def test_under_the_master_seed_a_variant_that_changes_nothing_reads_its_base_models_run(tmp_path):
    """The one-seed ablation (ablations.seeds: [the master seed]) trains only the variants that
    change something: m2rec_full is models.m2rec's own job, the same bits, so never trained."""
    workdir = copy_workflow(tmp_path)
    (workdir / "ablation.yaml").write_text(
        ABLATION.replace("seeds: [1, 2]", "seeds: [42]").replace(
            "m2rec_no_text: {model: m2rec, text: false}", "m2rec_full: {model: m2rec}"))
    trained = {wildcards for rule, wildcards in dry_run_jobs(workdir, "ablation.yaml")
               if rule == "train"}
    assert trained == {"dataset=demo, model=m2rec", "dataset=demo, model=m2rec_no_fft.s42",
                       "dataset=demo, model=linrec", "dataset=demo, model=fmlp"}


def test_the_ablation_runs_only_on_the_datasets_it_names(tmp_path):
    """ablations.datasets: the run's default target asks for demo2's ablation table alone, and
    trains its variant runs on demo2 only; demo's table is refused, naming the key."""
    workdir = copy_workflow(tmp_path)
    (workdir / "ablation.yaml").write_text(
        ABLATION + "  datasets: [demo2]\n"
        "run:\n  datasets: [demo, demo2]\n"
        "datasets:\n  demo2:\n    format: demo\n    demo: {users: 200, items: 300, seed: 11}\n"
        "    item_text: {format: demo}\n")
    jobs = dry_run_jobs(workdir, "ablation.yaml")
    assert {wc for rule, wc in jobs if rule == "ablation_table"} == {"dataset=demo2"}, jobs
    variant_trainings = {wc for rule, wc in jobs if rule == "train" and ".s" in wc}
    assert variant_trainings == {f"dataset=demo2, model={variant}.s{seed}"
                                 for variant in ("m2rec_no_text", "m2rec_no_fft")
                                 for seed in (1, 2)}
    refused = snakemake(workdir, "-n", TABLE, "--configfile", "config/demo.yaml", "ablation.yaml")
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "ablations.datasets" in said and "not on 'demo'" in said, said[-2000:]
