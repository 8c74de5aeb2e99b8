"""Config validation: schema (types, ranges, unknown keys) and cross-key checks, before any job."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from hybridrec.config import check_config
from hybridrec.errors import ConfigError
from hybridrec.training.settings import resolve_settings

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def load(*names: str) -> dict:
    """Layer config files the way `--configfile a b` does (later keys override earlier ones)."""
    merged: dict = {}
    for name in names:
        merge(merged, yaml.safe_load((REPO / "config" / name).read_text()))
    return merged


def merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value


@pytest.mark.parametrize("files", [("config.yaml",), ("config.yaml", "demo.yaml"),
                                   ("config.yaml", "real.yaml"),
                                   ("config.yaml", "real.yaml", "real-sports-yelp.yaml"),
                                   ("config.yaml", "real.yaml", "paper-gaps.yaml")])
def test_shipped_configs_are_valid(files):
    config = load(*files)
    validate(config, schema=SCHEMA)
    check_config(config)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["datasets"]["ml-100k"]["item_text"].update(format="demo"),
     "datasets.ml-100k.item_text.format"),
    (lambda c: c["datasets"]["demo"].update(item_text={"format": "table", "path": "t.csv"}),
     "datasets.demo.item_text.format"),
    (lambda c: c["datasets"]["ml-100k"]["item_text"].update(path=None),
     "datasets.ml-100k.item_text.path"),
    (lambda c: c["datasets"]["ml-100k"]["item_text"].update(options={"genre": "g"}),
     "datasets.ml-100k.item_text.options"),
    (lambda c: c["text"]["encoder"].update(kind="sentence_transformers"), "text.encoder.path"),
    (lambda c: c["text"]["encoder"].update(checksum="sha256:" + "0" * 64),
     "text.encoder.checksum"),
    (lambda c: c["run"].update(datasets=["nope"]), "run.datasets"),
    (lambda c: c["models"]["fmlp"].update(droput=0.1), "models.fmlp.droput"),
    (lambda c: c["run"].update(models=["linrec", "gru"]), "run.models"),
    (lambda c: c["datasets"]["ml-1m"].update(url=None), "datasets.ml-1m"),
    (lambda c: c["models"]["fmlp"].update(objective="causal"), "models.fmlp.objective"),
    (lambda c: (c["run"].update(models=["mamba4rec", "m2rec"]),
                c["models"]["m2rec"].update(objective="causal")), "models.m2rec.objective"),
    (lambda c: c["models"]["linrec"].update(seed=3), "models.linrec.seed"),
])
def test_cross_key_errors_name_the_key(change, message):
    config = load("config.yaml")
    change(config)
    validate(config, schema=SCHEMA)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        check_config(config)


@pytest.mark.parametrize("change, path", [
    (lambda c: c.update(seed="x"), "seed"),
    (lambda c: c["models"]["fmlp"].update(dropout=1.5), "dropout"),
    (lambda c: c["evaluation"].update(protocol="pop50"), "protocol"),
    (lambda c: c.pop("datasets"), "datasets"),
    (lambda c: c["datasets"]["demo"].update(format="csv"), "format"),
    (lambda c: c.update(unexpected=1), "unexpected"),
    (lambda c: c["text"]["encoder"].update(kind="bert"), "kind"),
    (lambda c: c["datasets"]["demo"]["item_text"].update(format="json"), "format"),
    (lambda c: c["models"]["m2rec"].update(fft="yes"), "fft"),
])
def test_schema_rejects_bad_values_and_names_the_key(change, path):
    config = load("config.yaml")
    change(config)
    with pytest.raises(Exception, match=path):
        validate(copy.deepcopy(config), schema=SCHEMA)


def test_settings_split_architecture_from_training_with_per_dataset_overrides():
    config = load("config.yaml")
    ml = resolve_settings("linrec", config["models"]["linrec"], "ml-1m")
    beauty = resolve_settings("linrec", config["models"]["linrec"], "beauty")
    assert ml.architecture["max_len"] == 200 and ml.architecture["hidden_size"] == 128
    assert beauty.architecture["max_len"] == 50
    assert ml.training["lr"] == 0.001 and "lr" not in ml.architecture
    causal = resolve_settings("linrec", {**config["models"]["linrec"], "objective": "causal"}, "x")
    assert causal.architecture["causal"] is True
    sasrec = resolve_settings("sasrec", {**config["models"]["sasrec"], "objective": "causal"}, "x")
    assert "causal" not in sasrec.architecture


def _override(model: str, dataset: str, **values):
    return lambda c: c["models"][model].setdefault("per_dataset", {}).update({dataset: values})


@pytest.mark.parametrize("change, path", [
    (_override("fmlp", "demo", max_len=1), "['models']['fmlp']['per_dataset']['demo']['max_len']"),
    (_override("fmlp", "demo", epochs=0), "['models']['fmlp']['per_dataset']['demo']['epochs']"),
    (_override("fmlp", "demo", val_metric="hr@20"),
     "['models']['fmlp']['per_dataset']['demo']['val_metric']"),
    (_override("linrec", "demo", betas=[0.9, 1.0]),
     "['models']['linrec']['per_dataset']['demo']['betas']"),
    (lambda c: c.update(seed=2**32), "['seed']"),
    (lambda c: c["hybrid"].update(fusion_seeds=[0, -1]), "['hybrid']['fusion_seeds']"),
    (lambda c: c["hybrid"].update(branches=["linrec", "../../x"]), "['hybrid']['branches']"),
    (lambda c: c["models"].update({"a/b": {}}), "['models']"),
])
def test_schema_bounds_overrides_seeds_and_names_with_the_full_key_path(change, path):
    config = load("config.yaml", "demo.yaml")
    change(config)
    with pytest.raises(Exception, match=re.escape(f"On instance{path}")):
        validate(copy.deepcopy(config), schema=SCHEMA)


@pytest.mark.parametrize("change, message", [
    (_override("linrec", "Demo", epochs=2),
     "models.linrec.per_dataset.Demo: unknown dataset 'Demo' (did you mean 'demo'?)"),
    (_override("fmlp", "demo", droput=0.1), "models.fmlp.per_dataset.demo.droput: unknown key"),
    (_override("fmlp", "demo", per_dataset={}),
     "models.fmlp.per_dataset.demo.per_dataset: unknown key"),
    (_override("fmlp", "demo", objective="causal"),
     "models.fmlp.per_dataset.demo.objective: 'causal'"),
    (_override("linrec", "demo", hidden_size=30, n_heads=4),
     "models.linrec.per_dataset.demo.hidden_size: model 'linrec': hidden_size=30 is not a "
     "multiple of n_heads=4"),
    (lambda c: c["models"]["sasrec"].update(n_heads=5),
     "models.sasrec.n_heads: model 'sasrec': hidden_size=32 is not a multiple of n_heads=5"),
    (_override("linrec", "beauty", norm="paper", objective="causal"),
     "models.linrec.per_dataset.beauty.norm, models.linrec.per_dataset.beauty.objective: "),
    (lambda c: c["hybrid"].update(branches=["linrec", "fmpl"]),
     "hybrid.branches[1]: 'fmpl' is not a declared model"),
    (lambda c: c["gate_search"].update(trials=5, shards=1000),
     "gate_search.shards: 1000 shards for 5 trials (gate_search.trials) would leave 995"),
    (lambda c: c["datasets"]["beauty-fmlp"].update(path=str(REPO / "tests")),
     "datasets.beauty-fmlp.path: "),
])
def test_config_check_names_the_full_key_path(change, message):
    config = load("config.yaml", "demo.yaml")
    config["run"]["models"] = ["linrec", "fmlp", "sasrec"]
    change(config)
    validate(config, schema=SCHEMA)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(config)


def test_overrides_are_validated_without_schema_defaults_injected():
    config = load("config.yaml")
    validate(config, schema=SCHEMA)
    assert config["models"]["linrec"]["per_dataset"] == {"ml-1m": {"hidden_size": 128,
                                                                   "max_len": 200}}


def test_text_settings_default_to_the_tfidf_encoder_and_no_item_text():
    config = load("config.yaml")
    del config["text"]
    del config["datasets"]["ml-100k"]["item_text"]
    validate(config, schema=SCHEMA)
    assert config["text"]["encoder"] == {"kind": "tfidf", "dim": 64, "path": None,
                                         "checksum": None, "batch_size": 256}
    assert config["datasets"]["ml-100k"]["item_text"] is None
    assert config["datasets"]["demo"]["item_text"]["options"] == {}
    check_config(config)
