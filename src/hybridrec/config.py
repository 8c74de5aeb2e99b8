"""Config checks that a JSON schema cannot express; each error names the config key at fault.

The schema (workflow/schemas/config.schema.yaml) checks types and ranges first; these checks
look across keys: selected names must be declared, a dataset needs a source, and so on.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from hybridrec.errors import ConfigError


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
    _check_branches(config)
    ablation_models = _check_ablations(config)
    from hybridrec.training.settings import check_model_settings  # imports torch: only here

    check_model_settings(models, list(dict.fromkeys([*selected, *ablation_models])),
                         list(config["run"]["datasets"]))
    _check_hybrid(config["hybrid"])
    from hybridrec.variants import check_variants

    check_variants(config)


def _check_declared(key: str, name: str, declared: Collection[str], kind: str) -> None:
    """A name that refers to a declared entry; the error suggests the nearest declared name."""
    if name in declared:
        return
    same_case = [d for d in declared if d.casefold() == name.casefold()]
    near = same_case or difflib.get_close_matches(name, list(declared), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ConfigError(f"{key}: unknown {kind} {name!r}{hint}; declared: {sorted(declared)}")


def _check_dataset(key: str, ds: Mapping[str, Any]) -> None:
    fmt = ds["format"]
    if fmt == "demo":
        return
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
    """Fused branches are declared models or exports already in place; shards have trials."""
    for i, branch in enumerate(config["hybrid"]["branches"]):
        if branch in config["models"]:
            continue
        for dataset in config["run"]["datasets"]:
            exports = Path("results", "predictions", dataset, branch)
            if not exports.is_dir():
                raise ConfigError(
                    f"hybrid.branches[{i}]: {branch!r} is not a declared model (models: "
                    f"{sorted(config['models'])}) and {exports}/ holds no export of it; a model "
                    "trained elsewhere joins by placing its exports there (docs/contracts.md)")
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
    reported = config["evaluation"]["protocols"]
    for i, protocol in enumerate(block["protocols"]):
        if protocol not in reported:
            raise ConfigError(f"ablations.protocols[{i}]: {protocol!r} is not among "
                              f"evaluation.protocols {reported}, the protocols metrics hold")
    return used


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


def _check_hybrid(hybrid: Mapping[str, Any]) -> None:
    from hybridrec.reporting.paper import PAPER, PAPER_PROTOCOLS

    if PAPER in hybrid["protocols"]:
        unknown = [b for b in hybrid["branches"] if b not in PAPER_PROTOCOLS]
        if unknown:
            raise ConfigError(
                f"hybrid.protocols[{hybrid['protocols'].index(PAPER)}]: 'paper' ranks each "
                f"branch under its own paper's protocol, known for {sorted(PAPER_PROTOCOLS)} "
                f"only, not for {unknown}")
