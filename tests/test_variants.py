"""The `ablations` block: variants of a declared model under several seeds, their resolution to
the base model's settings, their validation before any job, and the ablation table."""

from __future__ import annotations

import copy
import re

import pandas as pd
import pytest
from snakemake.utils import validate
from test_config import SCHEMA, load

from hybridrec.config import check_config
from hybridrec.errors import ConfigError
from hybridrec.reporting.ablation import ablation_markdown, ablation_table
from hybridrec.training.settings import resolve_settings
from hybridrec.variants import (
    VariantRun,
    ablation_datasets,
    results_run,
    run_settings,
    variant_runs,
)


def with_ablations(**block) -> dict:
    """config.yaml + demo.yaml with an `ablations` block, schema-validated (defaults filled)."""
    config = load("config.yaml", "demo.yaml")
    config["ablations"] = {"seeds": [1, 2], "variants": {
        "m2rec_no_text": {"model": "m2rec", "text": False},
        "m2rec_no_fft": {"model": "m2rec", "fft": False}}, "baselines": ["linrec"], **block}
    validate(config, schema=SCHEMA)
    return config


def test_every_variant_runs_under_every_seed_named_variant_dot_seed():
    runs = variant_runs(with_ablations())
    assert [run.name for run in runs] == ["m2rec_no_text.s1", "m2rec_no_text.s2",
                                          "m2rec_no_fft.s1", "m2rec_no_fft.s2"]
    assert runs[1] == VariantRun("m2rec_no_text", "m2rec", 2)
    assert variant_runs(load("config.yaml", "demo.yaml")) == []


def test_a_run_resolves_to_its_base_models_settings_with_the_overrides():
    config = with_ablations()
    base = resolve_settings("m2rec", config["models"]["m2rec"], "demo")
    run = run_settings(config, "m2rec_no_text.s1", "demo").settings
    assert run.name == "m2rec"  # the training code sees the base model only
    assert run.architecture == {**base.architecture, "text": False}
    assert list(run.architecture) == list(base.architecture)  # same keys, same order
    assert run.training == base.training


def test_the_base_models_per_dataset_overrides_apply_and_the_variants_keys_win():
    config = with_ablations(variants={"short": {"model": "m2rec", "hidden_size": 16},
                                      "long": {"model": "m2rec", "max_len": 30}})
    short = run_settings(config, "short.s1", "ml-1m").settings
    assert short.architecture["max_len"] == 200  # models.m2rec.per_dataset.ml-1m
    assert short.architecture["hidden_size"] == 16
    assert run_settings(config, "long.s1", "ml-1m").settings.architecture["max_len"] == 30


def test_an_override_equal_to_the_base_changes_nothing():
    config = with_ablations(variants={
        "plain": {"model": "m2rec"},
        # the configured values (text, lr) and defaults the entry omits (weight_decay,
        # grad_clip), a YAML list for a tuple default
        "same": {"model": "m2rec", "text": True, "lr": 0.001, "weight_decay": 0.0,
                 "grad_clip": None, "conv_kernels": [3, 5, 7]}})
    plain = run_settings(config, "plain.s1", "demo").settings
    same = run_settings(config, "same.s1", "demo").settings
    assert plain == same == resolve_settings("m2rec", config["models"]["m2rec"], "demo")


def test_a_run_that_changes_nothing_under_the_master_seed_is_the_base_models_own_run():
    config = with_ablations(seeds=[1, 42], variants={
        "plain": {"model": "m2rec", "lr": 0.001},  # the base's lr: no override
        "short": {"model": "m2rec", "max_len": 30},
        "long": {"model": "m2rec", "max_len": 200}})
    assert config["seed"] == 42  # the master seed
    plain, short, long = (VariantRun(name, "m2rec", 42) for name in ("plain", "short", "long"))
    assert results_run(config, plain, "demo") == "m2rec"
    assert results_run(config, VariantRun("plain", "m2rec", 1), "demo") == "plain.s1"
    assert results_run(config, short, "demo") == "short.s42"
    # per dataset: ml-1m's windows are 200 already (models.m2rec.per_dataset), so there it is
    assert results_run(config, long, "demo") == "long.s42"
    assert results_run(config, long, "ml-1m") == "m2rec"


def test_the_ablation_runs_on_the_datasets_it_names_within_the_runs():
    config = with_ablations()
    config["run"]["datasets"] = ["demo", "ml-100k"]
    assert config["ablations"]["datasets"] is None  # the schema's default: every run dataset
    assert ablation_datasets(config) == ["demo", "ml-100k"]
    config["ablations"]["datasets"] = ["ml-100k", "beauty-fmlp"]  # beauty: not in this run
    assert ablation_datasets(config) == ["ml-100k"]
    del config["ablations"]
    assert ablation_datasets(config) == []


def test_without_the_block_nothing_is_added_to_the_config():
    config = load("config.yaml", "demo.yaml")
    before = copy.deepcopy(config)
    validate(config, schema=SCHEMA)
    assert "ablations" not in config
    validate(before, schema=SCHEMA)
    assert config == before


def test_the_shipped_ablation_config_is_valid():
    config = load("config.yaml", "real.yaml", "ablation.yaml")
    validate(config, schema=SCHEMA)
    check_config(config)
    names = [run.name for run in variant_runs(config)]
    assert len(names) == 15 and "m2rec_no_gate.s3" in names
    assert config["ablations"]["protocols"] == ["full", "uniform99"]


def _variant(**entry):
    return lambda c: c["ablations"]["variants"].update(x={"model": "m2rec", **entry})


@pytest.mark.parametrize("change, message", [
    (lambda c: c["ablations"]["variants"]["m2rec_no_text"].update(txet=False),
     "ablations.variants.m2rec_no_text.txet: unknown key for model 'm2rec' (did you mean "
     "'text'?)"),
    (_variant(per_dataset={"demo": {"fft": False}}),
     "ablations.variants.x.per_dataset: a variant takes flat keys only"),
    (_variant(seed=3), "ablations.variants.x.seed: a variant's seeds are ablations.seeds"),
    (_variant(device="cpu"), "ablations.variants.x.device: set by the pipeline"),
    (_variant(n_heads=2), "ablations.variants.x.n_heads: unknown key for model 'm2rec'"),
    (_variant(objective="causal"), "ablations.variants.x.objective: 'causal' trains every "
                                   "position at once, but m2rec mixes all positions"),
    (lambda c: c["ablations"]["variants"].update(x={"model": "linrec", "n_heads": 5}),
     "ablations.variants.x.n_heads: model 'linrec': hidden_size=32 is not a multiple of "
     "n_heads=5"),
    (lambda c: c["ablations"]["variants"].update(x={"model": "linrec", "hidden_size": 31}),
     "ablations.variants.x.hidden_size: model 'linrec': hidden_size=31 is not a multiple of "
     "n_heads=2"),
    (lambda c: c["ablations"]["variants"].update(x={"model": "m2rc"}),
     "ablations.variants.x.model: unknown model 'm2rc' (did you mean 'm2rec'?)"),
    (lambda c: c["ablations"]["variants"].update(fmlp={"model": "fmlp"}),
     "ablations.variants.fmlp: the name of a declared model"),
    (lambda c: c["ablations"].update(baselines=["linrec", "fmpl"]),
     "ablations.baselines[1]: unknown model 'fmpl' (did you mean 'fmlp'?)"),
    (lambda c: c.update(evaluation={**c["evaluation"], "protocols": ["full"]}),
     "ablations.protocols[1]: 'uniform99' is not among evaluation.protocols ['full']"),
])
def test_a_bad_variant_is_one_error_naming_its_full_key_path(change, message):
    config = with_ablations()
    change(config)
    validate(config, schema=SCHEMA)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(config)


@pytest.mark.parametrize("change, path", [
    (lambda c: c["ablations"]["variants"]["m2rec_no_text"].update(text="no"),
     "['ablations']['variants']['m2rec_no_text']['text']"),
    (lambda c: c["ablations"]["variants"]["m2rec_no_text"].update(dropout=2),
     "['ablations']['variants']['m2rec_no_text']['dropout']"),
    (lambda c: c["ablations"]["variants"]["m2rec_no_text"].update(conv_kernels=[]),
     "['ablations']['variants']['m2rec_no_text']['conv_kernels']"),
    (lambda c: c["ablations"]["variants"]["m2rec_no_text"].pop("model"),
     "['ablations']['variants']['m2rec_no_text']"),
    (lambda c: c["ablations"].update(seeds=[1, 1]), "['ablations']['seeds']"),
    (lambda c: c["ablations"].update(seeds=[-1]), "['ablations']['seeds'][0]"),
    (lambda c: c["ablations"]["variants"].update({"a.s1": {"model": "m2rec"}}),
     "['ablations']['variants']"),
    (lambda c: c["ablations"].update(protocols=["paper"]), "['ablations']['protocols'][0]"),
])
def test_the_schema_names_a_variants_wrong_type_by_its_key_path(change, path):
    config = with_ablations()
    change(config)
    with pytest.raises(Exception, match=re.escape(f"On instance{path}")):
        validate(copy.deepcopy(config), schema=SCHEMA)


def _report(values: dict[str, tuple[float, float, float]]) -> dict:
    return {"splits": {"test": {protocol: {"hr@10": hr, "ndcg@10": ndcg, "mrr": mrr}
                                for protocol, (hr, ndcg, mrr) in values.items()}}}


def test_the_ablation_table_gives_mean_std_and_n_per_variant_and_protocol():
    rows = [{"name": "m2rec_no_text", "model": "m2rec", "overrides": {"text": False},
             "seeds": [1, 2, 3], "runs": ["m2rec_no_text.s1", "m2rec_no_text.s2",
                                         "m2rec_no_text.s3"]},
            {"name": "linrec", "model": "linrec", "overrides": {}, "seeds": [42],
             "runs": ["linrec"]}]
    reports = {"m2rec_no_text.s1": _report({"full": (0.1, 0.05, 0.04), "uniform99": (.5, .3, .2)}),
               "m2rec_no_text.s2": _report({"full": (0.2, 0.07, 0.05), "uniform99": (.6, .3, .2)}),
               "m2rec_no_text.s3": _report({"full": (0.3, 0.09, 0.06), "uniform99": (.7, .3, .2)}),
               "linrec": _report({"full": (0.25, 0.1, 0.08), "uniform99": (0.8, 0.5, 0.4)})}
    table = ablation_table("demo", rows, reports, ["full", "uniform99"])
    assert table[["protocol", "name", "n"]].values.tolist() == [
        ["full", "m2rec_no_text", 3], ["full", "linrec", 1],
        ["uniform99", "m2rec_no_text", 3], ["uniform99", "linrec", 1]]
    full = table.iloc[0]
    assert full["hr@10_mean"] == pytest.approx(0.2)
    assert full["hr@10_std"] == pytest.approx(0.1)  # sample std (ddof 1)
    assert full["ndcg@10_std"] == pytest.approx(0.02)
    assert full["overrides"] == "text=false" and full["seeds"] == "1 2 3"
    assert pd.isna(table.iloc[1]["hr@10_std"]) and table.iloc[1]["mrr_mean"] == 0.08
    assert table.iloc[2]["ndcg@10_std"] == pytest.approx(0.0)
    markdown = ablation_markdown(table)
    assert "| full | m2rec_no_text | m2rec | text=false | 3 | 0.2000 ± 0.1000 |" in markdown
    assert "| full | linrec | linrec |  | 1 | 0.2500 | 0.1000 | 0.0800 |" in markdown
