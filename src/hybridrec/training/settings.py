"""One `models.<name>` config entry -> model hyperparameters and a TrainConfig for a dataset."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from hybridrec.errors import ConfigError
from hybridrec.models import MODELS, hyperparameter_names
from hybridrec.training.config import TrainConfig

TRAIN_KEYS = frozenset(f.name for f in dataclasses.fields(TrainConfig))
# Set by the pipeline from other config sections, never per model.
PIPELINE_KEYS = frozenset({"seed", "device", "placement", "bf16", "val_protocols",
                           "num_threads"})


@dataclass(frozen=True)
class ModelSettings:
    """What one model needs on one dataset: architecture kwargs and training settings."""

    name: str
    architecture: dict[str, Any]
    training: dict[str, Any]


def setting_paths(name: str, entry: Mapping[str, Any], dataset: str) -> dict[str, str]:
    """The full config key path each of a model's settings on ``dataset`` comes from.

    ``models.<name>.<key>``, or ``models.<name>.per_dataset.<dataset>.<key>`` where overridden.
    """
    paths = {key: f"models.{name}.{key}" for key in entry if key != "per_dataset"}
    overrides = entry.get("per_dataset", {}).get(dataset, {})
    paths.update({key: f"models.{name}.per_dataset.{dataset}.{key}" for key in overrides})
    return paths


def resolve_settings(name: str, entry: Mapping[str, Any], dataset: str) -> ModelSettings:
    """Split a model's flat config entry (plus its per_dataset overrides) into its two halves.

    Raises ConfigError naming the full key path (see :func:`setting_paths`) of a key neither
    half accepts.
    """
    merged = {k: v for k, v in entry.items() if k != "per_dataset"}
    merged.update(entry.get("per_dataset", {}).get(dataset, {}))
    paths = setting_paths(name, entry, dataset)
    architecture_keys = set(hyperparameter_names(name))
    architecture, training = {}, {}
    for key, value in merged.items():
        if key in PIPELINE_KEYS:
            raise ConfigError(f"{paths[key]}: set by the pipeline, not per model")
        if key in architecture_keys:
            architecture[key] = value
        elif key in TRAIN_KEYS:
            training[key] = tuple(value) if key == "betas" else value
        else:
            raise ConfigError(
                f"{paths[key]}: unknown key; model hyperparameters are "
                f"{sorted(architecture_keys)}, "
                f"training settings {sorted(TRAIN_KEYS - PIPELINE_KEYS)}")
    if training.get("objective") == "causal":
        if "causal" in architecture_keys:
            architecture["causal"] = True  # the all-positions objective needs causal attention
        elif not MODELS[name].is_causal(architecture):
            raise ConfigError(
                f"{paths['objective']}: 'causal' trains every position at once, but {name} "
                "mixes all positions (future items would leak); use 'prefix'")
    return ModelSettings(name, architecture, training)


def check_model_settings(models: Mapping[str, Any], selected: list[str],
                         datasets: list[str]) -> None:
    """Resolve and range-check every selected model on every selected dataset (no weights built).

    Every dataset a model has per_dataset overrides for is checked too, selected or not. Raises
    ConfigError naming the full key path of the value at fault (two paths where a pair of values
    is wrong together), so a bad value stops the run before any job.
    """
    for name in selected:
        if name not in MODELS:
            raise ConfigError(f"run.models: model {name!r} is not registered; "
                              f"available: {sorted(MODELS)}")
        entry = models[name]
        config_class = cast(Callable[..., object], MODELS[name].config_class)
        for dataset in dict.fromkeys([*datasets, *entry.get("per_dataset", {})]):
            settings = resolve_settings(name, entry, dataset)
            paths = setting_paths(name, entry, dataset)
            if "causal" not in paths:  # set by `objective: causal`
                paths["causal"] = paths.get("objective", f"models.{name}.objective")
            _check_values(functools.partial(config_class, num_items=1),
                          settings.architecture, paths)
            _check_values(TrainConfig, settings.training, paths)


def _check_values(build: Callable[..., object], values: dict[str, Any],
                  paths: Mapping[str, str]) -> None:
    """``build(**values)``; its ConfigError is raised again naming the key path(s) at fault."""
    try:
        build(**values)
    except ConfigError as error:
        raise ConfigError(f"{', '.join(_culprits(build, values, paths))}: {error}") from None


def _culprits(build: Callable[..., object], values: dict[str, Any],
              paths: Mapping[str, str]) -> list[str]:
    """The paths of the smallest set of values (one, else a pair) that ``build`` rejects alone."""
    groups = [(key,) for key in values] + list(itertools.combinations(values, 2))
    for group in groups:
        try:
            build(**{key: values[key] for key in group})
        except ConfigError:
            return [paths[key] for key in group]
    return [paths[key] for key in values]

