"""A model's settings on one dataset, resolved from layers: model hyperparameters and training.

A model's flat config keys come in layers, later ones winning: ``models.<name>`` (the base),
``models.<name>.per_dataset.<dataset>``, and for an ablation run its variant's keys
(``ablations.variants.<variant>``, :mod:`hybridrec.variants`). Each layer carries the key-path
prefix its errors name, so a value at fault is reported where it was written. One resolver
(:func:`resolve_layers`) splits the merged keys into the two halves a run needs, and one checker
(:func:`check_resolved`) builds both halves' dataclasses, naming the key path(s) at fault.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class SettingsLayer:
    """Flat keys of one layer of a model's settings and the key path they are written under."""

    values: Mapping[str, Any]
    prefix: str  # e.g. "models.fmlp", "models.fmlp.per_dataset.beauty"


@dataclass(frozen=True)
class ResolvedSettings:
    """A model's settings and, for every key, the config key path its value comes from."""

    settings: ModelSettings
    paths: dict[str, str] = field(repr=False)


def model_layers(name: str, entry: Mapping[str, Any], dataset: str) -> list[SettingsLayer]:
    """``models.<name>`` (less ``per_dataset``) and its ``per_dataset.<dataset>`` overrides."""
    base = {k: v for k, v in entry.items() if k != "per_dataset"}
    own = entry.get("per_dataset", {}).get(dataset, {})
    return [SettingsLayer(base, f"models.{name}"),
            SettingsLayer(own, f"models.{name}.per_dataset.{dataset}")]


def resolve_layers(name: str, layers: Sequence[SettingsLayer]) -> ResolvedSettings:
    """Merge ``layers`` (later ones win) and split the keys into architecture and training.

    ``objective: causal`` sets the ``causal`` hyperparameter of a model that has one (the
    all-positions objective needs causal attention) and is refused for a model that mixes all
    positions. Raises ConfigError naming the key path of a key neither half accepts.
    """
    merged: dict[str, Any] = {}
    paths: dict[str, str] = {}
    for layer in layers:
        merged.update(layer.values)
        paths.update({key: f"{layer.prefix}.{key}" for key in layer.values})
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
            architecture["causal"] = True
            paths.setdefault("causal", paths["objective"])
        elif not MODELS[name].is_causal(architecture):
            raise ConfigError(
                f"{paths['objective']}: 'causal' trains every position at once, but {name} "
                "mixes all positions (future items would leak); use 'prefix'")
    return ResolvedSettings(ModelSettings(name, architecture, training), paths)


def resolve_settings(name: str, entry: Mapping[str, Any], dataset: str) -> ModelSettings:
    """A declared model's settings on ``dataset`` (its base keys, then its per_dataset ones)."""
    return resolve_layers(name, model_layers(name, entry, dataset)).settings


def setting_paths(name: str, entry: Mapping[str, Any], dataset: str) -> dict[str, str]:
    """The full config key path each of a model's settings on ``dataset`` comes from."""
    return resolve_layers(name, model_layers(name, entry, dataset)).paths


def check_resolved(resolved: ResolvedSettings) -> None:
    """Build the model's config class and the TrainConfig from resolved settings; a ConfigError
    is raised again naming the key path(s) at fault."""
    settings, paths = resolved.settings, resolved.paths
    config_class = cast(Callable[..., object], MODELS[settings.name].config_class)
    _check_values(functools.partial(config_class, num_items=1), settings.architecture, paths)
    _check_values(TrainConfig, settings.training, paths)


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
        for dataset in dict.fromkeys([*datasets, *entry.get("per_dataset", {})]):
            check_resolved(resolve_layers(name, model_layers(name, entry, dataset)))


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
