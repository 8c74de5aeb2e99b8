"""Published bundles: the weights a run may start from, and the bundles a run may (re)write."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from hybridrec.errors import ConfigError
from hybridrec.io import file_checksum
from hybridrec.jobs.bundle import (
    REPUBLISH,
    check_bundle_target,
    check_weights_from,
    import_weights,
    settings_differences,
)
from hybridrec.models import build_model
from hybridrec.models.files import SavedModel, Selection, read_model, write_model
from hybridrec.training.settings import ModelSettings
from hybridrec.variants import run_settings

MODEL_ENTRY = {"hidden_size": 8, "n_layers": 1, "n_heads": 2, "inner_size": 16, "max_len": 10,
               "loss": "ce", "lr": 0.001, "epochs": 5, "patience": 2, "val_metric": "ndcg@10"}
DATASET = {"format": "demo", "demo": {"users": 50, "items": 30, "seed": 7}}


def config(**changes: Any) -> dict[str, Any]:
    base = {"seed": 42, "run": {"datasets": ["demo"], "models": ["linrec"]},
            "datasets": {"demo": dict(DATASET)}, "models": {"linrec": dict(MODEL_ENTRY)},
            "evaluation": {"protocol": "full", "protocols": ["full"]}, "text": {},
            "hybrid": {}, "gate_search": {}, "training": {"threads": 1}}
    for key, value in changes.items():
        base[key] = value
    return base


def write_bundle_with_weights(root: Path, cfg: dict[str, Any],
                              runs: tuple[str, ...] = ("linrec",)) -> Path:
    """A minimal bundle: a LinRec model file per run (a declared model, or a variant run of
    LinRec), its history and the provenance record."""
    bundle = root / "docs" / "results" / "demo"
    (bundle / "models").mkdir(parents=True)
    record: dict[str, Any] = {"config": cfg, "weights": {}}
    for run in runs:
        chosen = run_settings(cfg, run, "demo").settings
        torch.manual_seed(0)
        model = build_model("linrec", 30, **chosen.architecture)
        architecture = {k: v for k, v in asdict(model.config).items() if k != "num_items"}
        saved = SavedModel(name="linrec", num_items=30, architecture=architecture,
                           training=chosen.training, primary="full",
                           selections={"full": Selection(3, {"ndcg@10": 0.1})},
                           weights={3: model.state_dict()}, epochs_run=5, seconds=1.0,
                           stopped_early=True)
        write_model(saved, bundle / "models" / f"{run}.pt")
        (bundle / "models" / f"{run}.history.parquet").write_bytes(b"history")
        record["weights"][run] = {
            "file": f"models/{run}.pt",
            "sha256": file_checksum(bundle / "models" / f"{run}.pt").removeprefix("sha256:"),
            "history": f"models/{run}.history.parquet",
            "history_sha256": file_checksum(bundle / "models" / f"{run}.history.parquet")
            .removeprefix("sha256:"),
            "architecture": architecture, "training": chosen.training, "primary": "full",
            "selected_epochs": {"full": 3}, "item_text": None}
    (bundle / "provenance.json").write_text(json.dumps(record))
    return bundle


def with_weights_from(cfg: dict[str, Any], bundle: Path) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    cfg["datasets"]["demo"]["weights_from"] = str(bundle)
    return cfg


def check(cfg: dict[str, Any], protocols: tuple[str, ...] = ("full",)) -> Any:
    return check_weights_from(cfg, "demo", {"linrec": run_settings(cfg, "linrec", "demo")},
                              protocols)


def test_a_bundle_with_the_config_s_settings_is_accepted_and_imported(tmp_path: Path) -> None:
    bundle = write_bundle_with_weights(tmp_path, config())
    found = check(with_weights_from(config(), bundle))
    assert found["linrec"].path == bundle / "models" / "linrec.pt"
    import_weights(found["linrec"], tmp_path / "run" / "model.pt", tmp_path / "run" / "h.pq")
    assert (tmp_path / "run" / "model.pt").read_bytes() == found["linrec"].path.read_bytes()
    built = read_model(tmp_path / "run" / "model.pt").build()  # loads strictly
    assert built.num_items == 30


def test_a_settings_mismatch_is_refused_naming_every_differing_key(tmp_path: Path) -> None:
    bundle = write_bundle_with_weights(tmp_path, config())
    changed = config(seed=7, models={"linrec": {**MODEL_ENTRY, "lr": 0.01, "hidden_size": 16}})
    with pytest.raises(ConfigError) as error:
        check(with_weights_from(changed, bundle))
    message = str(error.value)
    assert "datasets.demo.weights_from" in message and str(bundle) in message
    for key in ("models.linrec.lr: 0.01 here, 0.001 in the bundle",
                "models.linrec.hidden_size: 16 here, 8 in the bundle",
                "seed: 7 here, 42 in the bundle"):
        assert key in message
    assert "n_layers" not in message  # equal settings are not listed


def test_a_default_spelled_out_is_no_difference() -> None:
    ours = ModelSettings("linrec", {"hidden_size": 8, "norm": "official"}, {"lr": 0.001})
    theirs = {"architecture": {**_full_architecture({"hidden_size": 8})}, "training": {}}
    assert settings_differences(ours, theirs, {}) == []


def _full_architecture(overrides: dict[str, Any]) -> dict[str, Any]:
    model = build_model("linrec", 5, **overrides)
    return {k: v for k, v in asdict(model.config).items() if k != "num_items"}


def test_other_data_settings_are_refused(tmp_path: Path) -> None:
    bundle = write_bundle_with_weights(tmp_path, config())
    other = config()
    other["datasets"]["demo"] = {"format": "demo", "demo": {"users": 60, "items": 30, "seed": 7}}
    with pytest.raises(ConfigError, match=r"datasets\.demo\.demo"):
        check(with_weights_from(other, bundle))


def test_a_protocol_the_weights_were_not_selected_under_is_refused(tmp_path: Path) -> None:
    bundle = write_bundle_with_weights(tmp_path, config())
    with pytest.raises(ConfigError, match=r"not under \['uniform99'\]"):
        check(with_weights_from(config(), bundle), protocols=("full", "uniform99"))


@pytest.mark.parametrize("damage", ["missing", "flipped", "record"])
def test_a_missing_or_damaged_file_or_a_wrong_checksum_is_refused(tmp_path: Path,
                                                                  damage: str) -> None:
    bundle = write_bundle_with_weights(tmp_path, config())
    weights = bundle / "models" / "linrec.pt"
    if damage == "missing":
        weights.unlink()
        expected = "is missing"
    elif damage == "flipped":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
        expected = "damaged or was replaced"
    else:
        record = json.loads((bundle / "provenance.json").read_text())
        record["weights"]["linrec"]["sha256"] = "0" * 64
        (bundle / "provenance.json").write_text(json.dumps(record))
        expected = "damaged or was replaced"
    with pytest.raises(ConfigError, match=expected) as error:
        check(with_weights_from(config(), bundle))
    assert str(weights) in str(error.value)


def test_a_bundle_without_the_model_or_without_a_record_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="provenance.json: no such file"):
        check(with_weights_from(config(), tmp_path / "nothing"))
    bundle = write_bundle_with_weights(tmp_path, config())
    two = config(run={"datasets": ["demo"], "models": ["linrec", "sasrec"]})
    two["models"]["sasrec"] = dict(MODEL_ENTRY)
    with pytest.raises(ConfigError, match="no weights for model 'sasrec'"):
        check_weights_from(with_weights_from(two, bundle), "demo",
                           {name: run_settings(two, name, "demo") for name in two["models"]},
                           ("full",))


def test_an_ablation_run_is_checked_against_its_variants_settings(tmp_path: Path) -> None:
    """The ablation's runs come from the bundle like the models: a published run whose variant
    the config changed is refused, naming the variant's key; one the bundle lacks, by name."""
    ablation = {"seeds": [1], "variants": {"short": {"model": "linrec", "max_len": 5}}}
    cfg = config(ablations=ablation)
    bundle = write_bundle_with_weights(tmp_path, cfg, runs=("linrec", "short.s1"))
    runs = ("linrec", "short.s1")
    found = check_weights_from(with_weights_from(cfg, bundle), "demo",
                               {run: run_settings(cfg, run, "demo") for run in runs}, ("full",))
    assert found["short.s1"].path == bundle / "models" / "short.s1.pt"
    ablation["variants"]["short"]["max_len"] = 6
    with pytest.raises(ConfigError, match=r"ablations\.variants\.short\.max_len: 6 here, 5 in"):
        check_weights_from(with_weights_from(cfg, bundle), "demo",
                           {run: run_settings(cfg, run, "demo") for run in runs}, ("full",))
    ablation["seeds"] = [2]
    with pytest.raises(ConfigError, match=r"no weights for model 'short\.s2'"):
        check_weights_from(with_weights_from(cfg, bundle), "demo",
                           {run: run_settings(cfg, run, "demo") for run in ("linrec", "short.s2")},
                           ("full",))


def test_a_bundle_is_written_only_for_a_dataset_the_run_computes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no dataset 'beauty' is declared"):
        check_bundle_target("beauty", config(), tmp_path / "beauty")
    declared = config()
    declared["datasets"]["ml-100k"] = dict(DATASET)
    with pytest.raises(ConfigError, match=r"'ml-100k' is not in run.datasets \['demo'\]"):
        check_bundle_target("ml-100k", declared, tmp_path / "ml-100k")
    check_bundle_target("demo", config(), tmp_path / "demo")  # no bundle there yet


def test_a_committed_bundle_is_replaced_only_with_its_own_settings_or_on_purpose(
        tmp_path: Path) -> None:
    bundle = write_bundle_with_weights(tmp_path, config())
    check_bundle_target("demo", config(), bundle, environ={})  # same settings: rewritten
    other = config(models={"linrec": {**MODEL_ENTRY, "epochs": 1}})
    with pytest.raises(ConfigError, match=r"Differing: models\.linrec\.epochs") as error:
        check_bundle_target("demo", other, bundle, environ={})
    assert REPUBLISH in str(error.value)
    check_bundle_target("demo", other, bundle, environ={REPUBLISH: str(bundle)})


def test_a_bundle_records_its_datasets_models_so_a_model_run_elsewhere_leaves_it_alone(
        tmp_path: Path) -> None:
    """datasets.<name>.models: a model the run adds on another dataset only is no change to this
    dataset's bundle; adding it here is, and names run.models."""
    bundle = write_bundle_with_weights(tmp_path, config())
    wider = config(run={"datasets": ["demo"], "models": ["linrec", "sasrec"]},
                   datasets={"demo": {**DATASET, "models": ["linrec"]}},
                   models={"linrec": dict(MODEL_ENTRY), "sasrec": dict(MODEL_ENTRY)})
    check_bundle_target("demo", wider, bundle, environ={})
    wider["datasets"]["demo"]["models"] = None  # every run model, sasrec included
    with pytest.raises(ConfigError, match=r"Differing: .*run\.models"):
        check_bundle_target("demo", wider, bundle, environ={})


def test_an_ablation_on_other_datasets_only_is_no_setting_of_this_bundle(
        tmp_path: Path) -> None:
    """ablations.datasets: an ablation kept to another dataset leaves this bundle alone; one that
    runs here is a change, named, and where else it runs is not."""
    bundle = write_bundle_with_weights(tmp_path, config())
    ablation = {"seeds": [42], "variants": {"no_fft": {"model": "m2rec", "fft": False}},
                "baselines": [], "protocols": ["full"], "datasets": ["ml-100k"]}
    elsewhere = config(ablations=ablation)
    check_bundle_target("demo", elsewhere, bundle, environ={})
    ablation["datasets"] = ["demo", "ml-100k"]
    with pytest.raises(ConfigError, match=r"Differing: .*ablations\.variants\.no_fft\.fft"):
        check_bundle_target("demo", elsewhere, bundle, environ={})
    republished = write_bundle_with_weights(tmp_path / "again", elsewhere)
    ablation["datasets"] = None  # every run dataset: demo still, so the same settings here
    check_bundle_target("demo", elsewhere, republished, environ={})


def test_a_hybrid_variant_on_other_datasets_only_is_no_setting_of_this_bundle(
        tmp_path: Path) -> None:
    """hybrid.variants.<name>.datasets: a variant kept to another dataset leaves this bundle
    alone, and so does extending it there; one that runs here is a change, named."""
    bundle = write_bundle_with_weights(tmp_path, config())
    elsewhere = config(hybrid={"variants": {"three": {"branches": ["linrec", "fmlp", "m2rec"],
                                                      "datasets": ["ml-100k"]}}})
    check_bundle_target("demo", elsewhere, bundle, environ={})
    elsewhere["hybrid"]["variants"]["three"]["datasets"] = ["demo", "ml-100k"]
    with pytest.raises(ConfigError, match=r"Differing: .*hybrid\.variants\.three\.branches"):
        check_bundle_target("demo", elsewhere, bundle, environ={})
    republished = write_bundle_with_weights(tmp_path / "again", elsewhere)
    elsewhere["hybrid"]["variants"]["three"]["datasets"] = ["demo"]  # no longer on ml-100k
    check_bundle_target("demo", elsewhere, republished, environ={})
