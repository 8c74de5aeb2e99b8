"""Config validation: schema (types, ranges, unknown keys) and cross-key checks, before any job."""

from __future__ import annotations

import copy
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
                                   ("config.yaml", "beauty-fmlp.yaml")])
def test_shipped_configs_are_valid(files):
    config = load(*files)
    validate(config, schema=SCHEMA)
    check_config(config)


@pytest.mark.parametrize("change, message", [
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
