"""Config validation: schema (types, ranges, unknown keys) and cross-key checks, before any job."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from snakemake.utils import validate
from workflow_helpers import DEMO, copy_workflow, snakemake

from hybridrec.config import check_config, normalise_numbers
from hybridrec.data.candidates import protocol_keys
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
                                   ("config.yaml", "demo.yaml", "demo-all.yaml"),
                                   ("config.yaml", "real.yaml"),
                                   ("config.yaml", "real.yaml", "ablation.yaml"),
                                   ("config.yaml", "real.yaml", "real-sports-yelp.yaml"),
                                   ("config.yaml", "real.yaml", "paper-gaps.yaml"),
                                   ("config.yaml", "real.yaml", "published.yaml")])
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
    (lambda c: c["datasets"]["demo"].update(models=["linrec", "sasrek"]),
     "datasets.demo.models[1]: unknown model 'sasrek' (did you mean 'sasrec'?)"),
    (lambda c: c["hybrid"]["variants"].update(three={"datasets": ["ml-10k"]}),
     "hybrid.variants.three.datasets[0]: unknown dataset 'ml-10k' (did you mean 'ml-100k'?)"),
    (lambda c: c.update(ablations={"seeds": [42], "variants": {"no_fft": {"model": "m2rec"}},
                                   "baselines": [], "protocols": ["full"],
                                   "datasets": ["ml-100k", "beuaty"]}),
     "ablations.datasets[1]: unknown dataset 'beuaty'"),
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
    with pytest.raises(ConfigError, match=re.escape(message)):
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
    (lambda c: c["datasets"].update(t={"format": "table", "path": "t.csv", "options": {
        "user_col": "u", "item_col": "i", "time_col": "ts"}}),
     "datasets.t.options.time_col: unknown option for format 'table' (did you mean "
     "'timestamp_col'?); its options: ['user_col', 'item_col', 'timestamp_col', "),
    (lambda c: c["datasets"]["ml-1m"].update(options={"sep": "::"}),
     "datasets.ml-1m.options.sep: unknown option for format 'movielens_dat'; it takes no "
     "options"),
    (lambda c: c["datasets"]["demo"].update(options={"user_col": "u"}),
     "datasets.demo.options: format 'demo' is generated; it takes no options"),
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


def _floats_and_ints(value: float) -> dict:
    """The demo config with its integer settings written as ``value`` (1.0, then 1)."""
    config = load("config.yaml", "demo.yaml")
    config["seed"] = 42 * value
    config["evaluation"]["topk"] = 100 * value
    config["gate_search"]["shards"] = value
    config["hybrid"]["fusion_seeds"] = [0, 3 * value]
    config["models"]["fmlp"].update(epochs=value, weight_decay=0.0)
    _override("fmlp", "demo", max_len=20 * value)(config)
    config["ablations"] = {"seeds": [value], "variants": {"small": {"model": "fmlp",
                                                                   "epochs": 2 * value}}}
    return config


def test_integral_floats_are_normalised_to_ints_so_both_spellings_are_one_config():
    floats, ints = _floats_and_ints(1.0), _floats_and_ints(1)
    normalise_numbers(floats, SCHEMA)
    assert json.dumps(floats, sort_keys=True) == json.dumps(ints, sort_keys=True)
    assert type(floats["models"]["fmlp"]["per_dataset"]["demo"]["max_len"]) is int
    assert type(floats["models"]["fmlp"]["weight_decay"]) is float  # a number stays a number
    validate(floats, schema=SCHEMA)
    check_config(floats)
    fraction = load("config.yaml")
    fraction["models"]["fmlp"]["epochs"] = 1.5
    normalise_numbers(fraction, SCHEMA)
    assert fraction["models"]["fmlp"]["epochs"] == 1.5  # left to the schema, which rejects it


@pytest.mark.parametrize("change, message", [
    (_override("fmlp", "demo", lr="1e-3"),
     "models.fmlp.per_dataset.demo.lr: '1e-3' is a string, not a number: YAML 1.1 reads "
     "exponent notation as a number only with a dot and a signed exponent; write 1.0e-3 or "
     "0.001"),
    (lambda c: c["models"]["linrec"].update(epochs="2e2"),
     "models.linrec.epochs: '2e2' is a string, not a number: YAML 1.1 reads exponent notation "
     "as a number only with a dot and a signed exponent; write 2.0e+2 or 200"),
])
def test_exponent_strings_name_the_key_and_the_spellings_yaml_reads(change, message):
    config = load("config.yaml", "demo.yaml")
    change(config)
    with pytest.raises(ConfigError, match=re.escape(message)):
        normalise_numbers(config, SCHEMA)
    assert yaml.safe_load("lr: 1e-3") == {"lr": "1e-3"}  # YAML 1.1, as config files are read
    assert yaml.safe_load("lr: 1.0e-3") == {"lr": 0.001}


@pytest.mark.integration
def test_the_workflow_normalises_integral_floats_and_names_exponent_strings(tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "floats.yaml").write_text(
        "seed: 42.0\nevaluation: {topk: 100.0}\ngate_search: {shards: 1.0}\n"
        "models:\n  fmlp: {epochs: 1.0}\n")
    result = snakemake(workdir, "-n", *DEMO, "floats.yaml")
    assert result.returncode == 0, result.stderr[-3000:]  # shards 1.0 was a TypeError here
    (workdir / "lr.yaml").write_text("models:\n  fmlp: {lr: 1e-3}\n")
    result = snakemake(workdir, "-n", *DEMO, "lr.yaml")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "models.fmlp.lr: '1e-3' is a string" in output and "write 1.0e-3 or 0.001" in output


# every key a schema may hold: the keywords of draft 2020-12 and its annotations
SCHEMA_KEYWORDS = {*Draft202012Validator.VALIDATORS, "then", "else", "$schema", "$id", "$defs",
                   "$comment", "title", "description", "default", "examples", "deprecated"}
SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "dependentSchemas"}  # name -> schema
SCHEMA_VALUES = {"enum", "const", "default", "examples", "required"}  # data, not schemas


def _schema_keys(node: dict, path: str) -> list[tuple[str, str]]:
    """(path, key) of every key of ``node`` and the schemas inside it."""
    found = [(path, key) for key in node]
    for key, value in node.items():
        if key in SCHEMA_MAPS:
            for name, child in value.items():
                found += _schema_keys(child, f"{path}.{key}.{name}")
        elif key in SCHEMA_VALUES:
            continue
        elif isinstance(value, dict):
            found += _schema_keys(value, f"{path}.{key}")
        elif isinstance(value, list):
            for i, child in enumerate(value):
                if isinstance(child, dict):
                    found += _schema_keys(child, f"{path}.{key}[{i}]")
    return found


def test_every_schema_key_is_a_json_schema_keyword():
    """A comma in an unquoted description of a flow mapping (`{type: integer, description: a,
    b}`) makes `b` a key of its own, which every error for that property then prints."""
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    keys = _schema_keys(schema, "schema")
    assert len(keys) > 300
    assert [(path, key) for path, key in keys if key not in SCHEMA_KEYWORDS] == []


def test_every_config_key_is_described():
    """Every property a config can set says what it is, for whoever reads the schema to write a
    config; one that only points elsewhere (``$ref``) is described there."""
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    properties = sorted({path for path, _ in _schema_keys(schema, "schema")
                         if path.split(".")[-2:-1] == ["properties"]})
    assert len(properties) > 100
    undescribed = []
    for path in properties:
        node = schema
        for part in path.split(".")[1:]:
            node = node[part]
        if "description" not in node and "$ref" not in node:
            undescribed.append(path)
    assert undescribed == []


def test_the_schema_s_protocol_lists_are_the_package_s():
    """The protocols are named once (hybridrec.protocols); the schema's enums must agree."""
    from hybridrec.protocols import HYBRID_PROTOCOLS, PROTOCOLS

    schema = yaml.safe_load(Path(SCHEMA).read_text())["properties"]
    evaluation = schema["evaluation"]["properties"]
    assert evaluation["protocol"]["enum"] == list(PROTOCOLS)
    assert evaluation["protocols"]["items"]["enum"] == list(PROTOCOLS)
    assert schema["hybrid"]["properties"]["protocols"]["items"]["enum"] == list(HYBRID_PROTOCOLS)


def test_protocol_keys_name_what_asks_for_a_protocol():
    config = load("config.yaml")
    config["ablations"] = {"protocols": ["uniform99"]}
    config["hybrid"]["protocols"] = ["full", "paper"]
    assert protocol_keys(config, "uniform99") == [
        "evaluation.protocols[1]", "ablations.protocols[0]",
        "hybrid.protocols[1] ('paper': fmlp under uniform99)"]
    assert protocol_keys(config, "pop100") == [
        "evaluation.protocols[2]", "hybrid.protocols[1] ('paper': linrec under pop100)"]
    config["evaluation"] = {"protocol": "pop100", "protocols": ["full"]}
    config["hybrid"].update(protocols=["full"])
    assert protocol_keys(config, "pop100") == ["evaluation.protocol"]
    assert protocol_keys(config, "uniform99") == ["ablations.protocols[0]"]


def test_a_demo_catalogue_too_small_for_a_protocol_names_the_key_that_asks_for_it():
    """The demo's catalogue is known from its block: checked before any job, the error naming
    hybrid.protocols (the default [full, uniform99]) when evaluation.protocols is [full]."""
    config = load("config.yaml", "demo.yaml")
    config["datasets"]["demo"]["demo"] = {"items": 120}
    config["evaluation"] = {"protocols": ["full"]}
    validate(config, schema=SCHEMA)
    message = (r"datasets\.demo: protocol uniform99 draws 99 negatives per user .* users have "
               r"fewer \(the catalogue holds 120 items\).* remove 'uniform99' from "
               r"hybrid\.protocols\[1\] \(`full`")
    with pytest.raises(ConfigError, match=message):
        check_config(config)
    config["hybrid"]["protocols"] = ["full"]
    check_config(config)  # full ranking alone needs no candidates


@pytest.mark.parametrize(("variant", "message"), [
    ({"protocols": ["pop100"]},
     "hybrid.variants.v.protocols[0]: 'pop100' is not among hybrid.protocols"),
    ({"branches": ["linrec", "m2rec"]},
     "hybrid.variants.v.branches: 'paper' (hybrid.protocols) ranks each branch under its own "
     "paper's protocol, unknown for ['m2rec']"),
    ({"branches": ["linrec", "nope"], "protocols": ["full"]},
     "hybrid.variants.v.branches[1]: 'nope' is not a declared model"),
])
def test_a_hybrid_variant_s_branches_and_protocols_are_checked(variant, message):
    config = load("config.yaml", "demo.yaml")
    config["hybrid"]["protocols"] = ["full", "paper"]
    config["hybrid"]["variants"] = {"v": variant}
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(config)
    config["hybrid"]["variants"] = {"v": {"branches": ["linrec", "m2rec"],
                                          "protocols": ["full"]}}
    check_config(config)  # a variant under full ranking fuses any declared models
