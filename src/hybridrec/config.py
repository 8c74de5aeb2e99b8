"""Config checks that a JSON schema cannot express; each error names the config key at fault.

:func:`normalise_numbers` runs before the schema (workflow/schemas/config.schema.yaml), which
then checks types and ranges; :func:`check_config` runs after it and looks across keys: selected
names must be declared, a dataset needs a source, and so on.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from hybridrec.errors import ConfigError

# Draft 2020-12 with `integer` meaning an int: the stock validator counts 100.0 as an integer
_IntValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)))
# exponent notation that YAML 1.1 (PyYAML, which reads the config files) leaves a string: its
# floats need a dot in the mantissa and a sign in the exponent
_EXPONENT_STRING = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+))[eE]([-+]?\d+)")


def normalise_numbers(config: dict[str, Any], schema: str | os.PathLike[str]) -> None:
    """Make config numbers the types ``schema`` declares; run before the schema validates.

    A float with an integer value where the schema wants an integer (``seed: 42.0``,
    ``epochs: 1.0``) becomes that int, in place. JSON Schema counts 100.0 as an integer, so the
    schema lets it through to code that needs an int (``range``, slicing, the resume key).
    Normalised rather than rejected: the schema already calls the value an integer, and the
    same config written two ways is then the same config (``epochs: 1.0`` and ``epochs: 1``
    give the same jobs, results and checkpoints) instead of a retyping chore.

    A string in exponent notation where a number is wanted (``lr: 1e-3``, a string to YAML 1.1)
    raises ConfigError naming the key and the spellings that read as numbers.
    """
    spec = yaml.safe_load(Path(schema).read_text())
    for error in list(_type_errors(_IntValidator(spec).iter_errors(config))):
        types = error.validator_value  # a type name or a list of them
        wanted = {types} if isinstance(types, str) else set(types)
        value, path = error.instance, list(error.absolute_path)
        if isinstance(value, float) and value.is_integer() and "integer" in wanted:
            _parent(config, path)[path[-1]] = int(value)
        elif isinstance(value, str) and wanted & {"number", "integer"}:
            spelled = _EXPONENT_STRING.fullmatch(value)
            if spelled:
                raise ConfigError(
                    f"{_key_path(path)}: {value!r} is a string, not a number: YAML 1.1 reads "
                    f"exponent notation as a number only with a dot and a signed exponent; "
                    f"write {_yaml_float(*spelled.groups())} or {Decimal(value):f}")


def _type_errors(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    """The `type` errors among ``errors`` and those under them (the branches of an anyOf)."""
    pending = list(errors)
    while pending:
        error = pending.pop(0)
        pending.extend(error.context)
        if error.validator == "type":
            yield error


def _parent(config: Any, path: Sequence[str | int]) -> Any:
    for part in path[:-1]:
        config = config[part]
    return config


def _key_path(path: Sequence[str | int]) -> str:
    """``['models', 'fmlp', 'lr']`` as ``models.fmlp.lr``; list indices as ``[i]``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)[1:]


def _yaml_float(mantissa: str, exponent: str) -> str:
    """``1e-3`` spelled as YAML 1.1 reads a float: ``1.0e-3``."""
    mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
    return f"{mantissa}e{exponent if exponent[0] in '+-' else '+' + exponent}"


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first key that is inconsistent with the rest."""
    datasets = config["datasets"]
    for i, name in enumerate(config["run"]["datasets"]):
        _check_declared(f"run.datasets[{i}]", name, datasets, "dataset")
    for name, ds in datasets.items():
        _check_dataset(f"datasets.{name}", ds)
        if ds.get("item_text"):
            _check_item_text(f"datasets.{name}.item_text", ds)
    _check_text_encoder("text.encoder", config.get("text", {}).get("encoder", {}))
    models = config["models"]
    selected = list(config["run"].get("models", []))
    for i, name in enumerate(selected):
        _check_declared(f"run.models[{i}]", name, models, "model")
    for name, entry in models.items():
        for dataset in entry.get("per_dataset", {}):
            _check_declared(f"models.{name}.per_dataset.{dataset}", dataset, datasets, "dataset")
    for name, ds in datasets.items():
        for i, model in enumerate(ds.get("models") or []):
            _check_declared(f"datasets.{name}.models[{i}]", model, models, "model")
    _check_branches(config)
    ablation_models = _check_ablations(config)
    from hybridrec.training.settings import check_model_settings  # imports torch: only here

    check_model_settings(models, list(dict.fromkeys([*selected, *ablation_models])),
                         list(config["run"]["datasets"]))
    _check_hybrid(config["hybrid"], datasets)
    from hybridrec.variants import check_variants

    check_variants(config)
    for name in config["run"]["datasets"]:
        if datasets[name]["format"] == "demo":
            _check_demo_candidates(config, name)


def dataset_models(config: Mapping[str, Any], dataset: str) -> list[str]:
    """The run's models on ``dataset``: those of run.models that ``datasets.<dataset>.models``
    names (in run.models' order), or all of run.models (also for an undeclared dataset, which
    the bundle rule refuses by name)."""
    chosen = config["datasets"].get(dataset, {}).get("models")
    return [model for model in config["run"]["models"] if chosen is None or model in chosen]


def _check_declared(key: str, name: str, declared: Collection[str], kind: str) -> None:
    """A name that refers to a declared entry; the error suggests the nearest declared name."""
    if name in declared:
        return
    same_case = [d for d in declared if d.casefold() == name.casefold()]
    near = same_case or difflib.get_close_matches(name, list(declared), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ConfigError(f"{key}: unknown {kind} {name!r}{hint}; declared: {sorted(declared)}")


def _check_dataset(key: str, ds: Mapping[str, Any]) -> None:
    from hybridrec.data.readers import check_reader_options

    fmt = ds["format"]
    if fmt == "demo":
        if ds.get("options"):
            raise ConfigError(f"{key}.options: format 'demo' is generated; it takes no options")
        return
    check_reader_options(fmt, ds.get("options", {}), key)
    if not ds.get("path") and not ds.get("url"):
        raise ConfigError(f"{key}: needs a 'path' (local file) or a 'url' to download from")
    if ds.get("path") and Path(ds["path"]).is_dir():
        raise ConfigError(f"{key}.path: {ds['path']!r} is a directory; name the raw file in it")
    if ds.get("archive_member") and not ds.get("path") and not str(ds["url"]).endswith(".zip"):
        raise ConfigError(
            f"{key}.archive_member: only zip archives are supported, url is {ds['url']!r}")
    if fmt == "table":
        options = ds.get("options", {})
        for column in ("user_col", "item_col"):
            if column not in options:
                raise ConfigError(f"{key}.options.{column}: required for format 'table'")


def _check_branches(config: Mapping[str, Any]) -> None:
    """Fused branches (the run's and every hybrid variant's) are declared models or exports
    already in place; shards have trials."""
    hybrid = config["hybrid"]
    keys = [("hybrid.branches", hybrid["branches"])]
    keys += [(f"hybrid.variants.{name}.branches", entry["branches"])
             for name, entry in hybrid.get("variants", {}).items() if "branches" in entry]
    for key, branches in keys:
        for i, branch in enumerate(branches):
            if branch in config["models"]:
                continue
            for dataset in config["run"]["datasets"]:
                exports = Path("results", "predictions", dataset, branch)
                if not exports.is_dir():
                    raise ConfigError(
                        f"{key}[{i}]: {branch!r} is not a declared model (models: "
                        f"{sorted(config['models'])}) and {exports}/ holds no export of it; a "
                        "model trained elsewhere joins by placing its exports there "
                        "(docs/contracts.md)")
    search = config["gate_search"]
    if search["shards"] > search["trials"]:
        raise ConfigError(
            f"gate_search.shards: {search['shards']} shards for {search['trials']} trials "
            f"(gate_search.trials) would leave {search['shards'] - search['trials']} of them "
            "empty; set gate_search.shards to at most gate_search.trials")


def _check_ablations(config: Mapping[str, Any]) -> list[str]:
    """The `ablations` block's names (see hybridrec.variants); returns the declared models it
    trains (variants' bases and baselines), whose settings are then checked like run.models'."""
    block = config.get("ablations")
    if not block:
        return []
    models = config["models"]
    used = []
    for name, entry in block["variants"].items():
        if name in models:
            raise ConfigError(f"ablations.variants.{name}: the name of a declared model; a "
                              f"variant needs its own (its runs are named {name}.s<seed>)")
        _check_declared(f"ablations.variants.{name}.model", entry["model"], models, "model")
        used.append(entry["model"])
    for i, name in enumerate(block["baselines"]):
        _check_declared(f"ablations.baselines[{i}]", name, models, "model")
        used.append(name)
    for i, dataset in enumerate(block.get("datasets") or []):
        _check_declared(f"ablations.datasets[{i}]", dataset, config["datasets"], "dataset")
    reported = config["evaluation"]["protocols"]
    for i, protocol in enumerate(block["protocols"]):
        if protocol not in reported:
            raise ConfigError(f"ablations.protocols[{i}]: {protocol!r} is not among "
                              f"evaluation.protocols {reported}, the protocols metrics hold")
    return used


def _check_demo_candidates(config: Mapping[str, Any], dataset: str) -> None:
    """A generated dataset's catalogue against every sampled protocol the run draws candidates
    for, before any job; the error names the keys that ask for the protocol.

    Where the declared catalogue could leave a user too few unseen items (fewer items than the
    protocol's negatives plus the longest sequence the demo draws), the dataset is generated
    and preprocessed here as its preprocess job will (under a second for 1000 users); a larger
    catalogue is not generated, and a file's is known only to its candidates job, which checks
    it the same way.
    """
    from hybridrec.data.candidates import check_negative_supply, protocol_keys
    from hybridrec.data.demo import generate_demo
    from hybridrec.protocols import SAMPLED_PROTOCOLS

    entry = config["datasets"][dataset]
    # load_raw leaves generate_demo's max_length at its default
    longest = inspect.signature(generate_demo).parameters["max_length"].default
    asked = {name: keys for name, protocol in SAMPLED_PROTOCOLS.items()
             if entry["demo"]["items"] - longest < protocol.negatives
             and (keys := protocol_keys(config, name))}
    if not asked:
        return
    from hybridrec.data.preprocess import build_interactions
    from hybridrec.data.sources import load_raw, preprocess_config

    data = build_interactions(load_raw(entry, None), preprocess_config(entry))
    for name, keys in asked.items():
        check_negative_supply(data, SAMPLED_PROTOCOLS[name], dataset, keys)


def _check_item_text(key: str, ds: Mapping[str, Any]) -> None:
    from hybridrec.data.item_text import check_item_text_options

    entry = ds["item_text"]
    fmt, options = entry["format"], entry.get("options", {})
    if (fmt == "demo") != (ds["format"] == "demo"):
        raise ConfigError(f"{key}.format: 'demo' item text goes with a 'demo' dataset and only "
                          f"there (the dataset's format is {ds['format']!r})")
    if fmt == "demo":
        if entry.get("path") or options:
            raise ConfigError(f"{key}: format 'demo' is generated; it takes no path or options")
        return
    if not entry.get("path"):
        raise ConfigError(f"{key}.path: required for item text format {fmt!r}")
    check_item_text_options(fmt, options, key)


def _check_text_encoder(key: str, encoder: Mapping[str, Any]) -> None:
    kind = encoder.get("kind", "tfidf")
    if kind == "sentence_transformers" and not encoder.get("path"):
        raise ConfigError(f"{key}.path: required for kind 'sentence_transformers' (a local "
                          f"sentence-transformers model directory)")
    for name in ("path", "checksum"):
        if kind != "sentence_transformers" and encoder.get(name):
            raise ConfigError(f"{key}.{name}: only for kind 'sentence_transformers' "
                              f"(kind is {kind!r})")


def _check_hybrid(hybrid: Mapping[str, Any], datasets: Collection[str]) -> None:
    from hybridrec.protocols import PAPER, PAPER_PROTOCOLS

    if PAPER in hybrid["protocols"]:
        unknown = [b for b in hybrid["branches"] if b not in PAPER_PROTOCOLS]
        if unknown:
            raise ConfigError(
                f"hybrid.protocols[{hybrid['protocols'].index(PAPER)}]: 'paper' ranks each "
                f"branch under its own paper's protocol, known for {sorted(PAPER_PROTOCOLS)} "
                f"only, not for {unknown}")
    _check_gate_settings("hybrid", hybrid)
    for name, overrides in hybrid.get("variants", {}).items():
        key = f"hybrid.variants.{name}"
        _check_gate_settings(key, {**hybrid, **overrides}, overrides)
        protocols = overrides.get("protocols", hybrid["protocols"])
        for i, protocol in enumerate(overrides.get("protocols", [])):
            if protocol not in hybrid["protocols"]:
                raise ConfigError(f"{key}.protocols[{i}]: {protocol!r} is not among "
                                  f"hybrid.protocols {list(hybrid['protocols'])}; a variant "
                                  "runs beside the configured run of its protocol")
        for i, dataset in enumerate(overrides.get("datasets", [])):
            _check_declared(f"{key}.datasets[{i}]", dataset, datasets, "dataset")
        branches = overrides.get("branches", hybrid["branches"])
        unknown = [b for b in branches if b not in PAPER_PROTOCOLS]
        if "branches" in overrides and PAPER in protocols and unknown:
            raise ConfigError(f"{key}.branches: 'paper' (hybrid.protocols) ranks each branch "
                              f"under its own paper's protocol, unknown for {unknown}; give the "
                              f"variant its protocols ({key}.protocols) without 'paper'")


def _check_gate_settings(key: str, hybrid: Mapping[str, Any],
                         declared: Mapping[str, Any] | None = None) -> None:
    """A run's gate features are among the six, and focal loss goes with the MLP gate;
    ``declared``: a variant's own keys (the error names the variant's key where it set it)."""
    from hybridrec.hybrid.features import FEATURES

    def where(name: str) -> str:
        return f"{key}.{name}" if declared is None or name in declared else f"hybrid.{name}"

    features = hybrid.get("features", "paper")
    if not isinstance(features, str):
        for i, name in enumerate(features):
            _check_declared(f"{where('features')}[{i}]", name, FEATURES, "feature")
    if hybrid.get("loss", "bce") == "focal" and hybrid.get("gate", "mlp") != "mlp":
        raise ConfigError(f"{where('loss')}: 'focal' trains the MLP gate only, but "
                          f"{where('gate')} is {hybrid['gate']!r}; tree gates use the log loss")
