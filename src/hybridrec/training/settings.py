"""One `models.<name>` config entry -> model hyperparameters and a TrainConfig for a dataset."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hybridrec.errors import ConfigError
from hybridrec.models import MODELS, hyperparameter_names
from hybridrec.training.loop import TrainConfig

TRAIN_KEYS = frozenset(f.name for f in dataclasses.fields(TrainConfig))
# Set by the pipeline from other config sections, never per model.
PIPELINE_KEYS = frozenset({"seed", "device", "placement", "bf16", "val_protocol", "num_threads"})


@dataclass(frozen=True)
class ModelSettings:
    """What one model needs on one dataset: architecture kwargs and training settings."""

    name: str
    architecture: dict[str, Any]
    training: dict[str, Any]


def resolve_settings(name: str, entry: Mapping[str, Any], dataset: str) -> ModelSettings:
    """Split a model's flat config entry (plus its per_dataset overrides) into its two halves.

    Raises ConfigError naming `models.<name>.<key>` for a key neither half accepts.
    """
    merged = {k: v for k, v in entry.items() if k != "per_dataset"}
    merged.update(entry.get("per_dataset", {}).get(dataset, {}))
    architecture_keys = set(hyperparameter_names(name))
    architecture, training = {}, {}
    for key, value in merged.items():
        if key in PIPELINE_KEYS:
            raise ConfigError(f"models.{name}.{key}: set by the pipeline, not per model")
        if key in architecture_keys:
            architecture[key] = value
        elif key in TRAIN_KEYS:
            training[key] = tuple(value) if key == "betas" else value
        else:
            raise ConfigError(
                f"models.{name}.{key}: unknown key; model hyperparameters are "
                f"{sorted(architecture_keys)}, "
                f"training settings {sorted(TRAIN_KEYS - PIPELINE_KEYS)}")
    if training.get("objective") == "causal":
        if "causal" in architecture_keys:
            architecture["causal"] = True  # the all-positions objective needs causal attention
        elif not MODELS[name].is_causal(architecture):
            raise ConfigError(
                f"models.{name}.objective: 'causal' trains every position at once, but {name} "
                "mixes all positions (future items would leak); use 'prefix'")
    return ModelSettings(name, architecture, training)


def check_model_settings(models: Mapping[str, Any], selected: list[str],
                         datasets: list[str]) -> None:
    """Resolve and range-check every selected model on every selected dataset (no weights built).

    Raises ConfigError naming the model and key, so a bad value stops the run before any job.
    """
    for name in selected:
        if name not in MODELS:
            raise ConfigError(f"run.models: model {name!r} is not registered; "
                              f"available: {sorted(MODELS)}")
        for dataset in datasets:
            settings = resolve_settings(name, models[name], dataset)
            MODELS[name].config_class(num_items=1, **settings.architecture)
            TrainConfig(**settings.training)
