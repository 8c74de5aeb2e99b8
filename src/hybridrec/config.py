"""Config checks that a JSON schema cannot express; each error names the config key at fault.

The schema (workflow/schemas/config.schema.yaml) checks types and ranges first; these checks
look across keys: selected names must be declared, a dataset needs a source, and so on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hybridrec.errors import ConfigError


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first key that is inconsistent with the rest."""
    datasets = config["datasets"]
    for i, name in enumerate(config["run"]["datasets"]):
        if name not in datasets:
            raise ConfigError(
                f"run.datasets[{i}]: unknown dataset {name!r}; declared: {sorted(datasets)}")
    for name, ds in datasets.items():
        _check_dataset(f"datasets.{name}", ds)
    models = config["models"]
    selected = list(config["run"].get("models", []))
    for i, name in enumerate(selected):
        if name not in models:
            raise ConfigError(
                f"run.models[{i}]: unknown model {name!r}; declared: {sorted(models)}")
    from hybridrec.training.settings import check_model_settings  # imports torch: only here

    check_model_settings(models, selected, list(config["run"]["datasets"]))
    _check_hybrid(config["hybrid"])


def _check_dataset(key: str, ds: Mapping[str, Any]) -> None:
    fmt = ds["format"]
    if fmt == "demo":
        return
    if not ds.get("path") and not ds.get("url"):
        raise ConfigError(f"{key}: needs a 'path' (local file) or a 'url' to download from")
    if ds.get("archive_member") and not ds.get("path") and not str(ds["url"]).endswith(".zip"):
        raise ConfigError(
            f"{key}.archive_member: only zip archives are supported, url is {ds['url']!r}")
    if fmt == "table":
        options = ds.get("options", {})
        for column in ("user_col", "item_col"):
            if column not in options:
                raise ConfigError(f"{key}.options.{column}: required for format 'table'")


def _check_hybrid(hybrid: Mapping[str, Any]) -> None:
    from hybridrec.reporting.paper import PAPER, PAPER_PROTOCOLS

    if PAPER in hybrid["protocols"]:
        unknown = [b for b in hybrid["branches"] if b not in PAPER_PROTOCOLS]
        if unknown:
            raise ConfigError(
                f"hybrid.protocols[{hybrid['protocols'].index(PAPER)}]: 'paper' ranks each "
                f"branch under its own paper's protocol, known for {sorted(PAPER_PROTOCOLS)} "
                f"only, not for {unknown}")
