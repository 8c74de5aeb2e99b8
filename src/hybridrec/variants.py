"""Named variants of a declared model, each trained under several seeds: the `ablations` block.

A config may declare::

    ablations:
      seeds: [1, 2, 3]
      variants:
        m2rec_no_text: {model: m2rec, text: false}   # models.m2rec with `text` overridden
        m2rec_full: {model: m2rec}                   # models.m2rec as it is, under the seeds
      baselines: [linrec, fmlp]                      # beside them: the declared models' own run

Every variant x seed pair is one *run*, named ``<variant>.s<seed>`` (``m2rec_no_text.s2``). A run
name is a ``{model}`` wildcard value of the train and evaluate rules like a declared model's
name, so a run is trained, evaluated under every protocol and exported like any model, into
``results/{models,metrics,predictions}/{dataset}/<run>/``. The workflow resolves it to a fully
resolved settings dict under the BASE model's name (:func:`run_settings`) and to the seed
(:attr:`VariantRun.seed`): the training code never knows about variants, and a run's code hash
is its base model's.

A variant's keys are those of ``models.<name>`` (flat; no ``per_dataset``: the base model's
``per_dataset`` overrides apply to its variants, and a variant's own keys win over them): the
variant is the last layer of the model's settings (:mod:`hybridrec.training.settings`), its keys
named ``ablations.variants.<variant>.<key>`` in errors. An override equal to the base model's
value (its configured one, else its default) is dropped, so it changes nothing: the run's
settings are exactly those of a variant without it.

A run that changes nothing on a dataset and trains under the master seed is the base model's own
training job (same settings, seed and code: the same bits on CPU), so its results are read from
the base model's run and it is never trained twice (:func:`results_run`): the one-seed ablation
under the master seed trains only the variants that change something.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from hybridrec.errors import ConfigError
from hybridrec.models import MODELS, hyperparameter_names
from hybridrec.training.config import TrainConfig
from hybridrec.training.settings import (
    PIPELINE_KEYS,
    TRAIN_KEYS,
    ResolvedSettings,
    SettingsLayer,
    check_resolved,
    model_layers,
    resolve_layers,
    resolve_settings,
    setting_paths,
)

SEED_MARK = ".s"  # <variant>.s<seed>; names cannot hold a dot, so the split is unambiguous


@dataclass(frozen=True)
class VariantRun:
    """One variant trained under one seed."""

    variant: str
    model: str  # the declared (and registered) model it overrides
    seed: int

    @property
    def name(self) -> str:
        """The run's ``{model}`` wildcard value and results folder name."""
        return f"{self.variant}{SEED_MARK}{self.seed}"


def variant_runs(config: Mapping[str, Any]) -> list[VariantRun]:
    """Every variant x seed of ``ablations`` (none without the block): variants in config
    order, each under every seed in order."""
    block = config.get("ablations")
    if not block:
        return []
    return [VariantRun(name, entry["model"], seed)
            for name, entry in block["variants"].items() for seed in block["seeds"]]


def variant_key_path(variant: str, key: str) -> str:
    return f"ablations.variants.{variant}.{key}"


def overrides(config: Mapping[str, Any], variant: str) -> dict[str, Any]:
    """The settings a variant declares (its entry without ``model``), as written."""
    entry = config["ablations"]["variants"][variant]
    return {key: value for key, value in entry.items() if key != "model"}


def run_settings(config: Mapping[str, Any], name: str, dataset: str) -> ResolvedSettings:
    """The settings of a ``{model}`` value on ``dataset``, with the config key path each comes
    from: a declared model's, or a variant run's (the base model's with its per_dataset
    overrides, then the variant's overrides that differ from them; named after the base)."""
    runs = {run.name: run for run in variant_runs(config)}
    if name in runs:
        return _resolve_variant(config, runs[name].variant, runs[name].model, dataset)
    entry = config["models"][name]
    return ResolvedSettings(resolve_settings(name, entry, dataset),
                            setting_paths(name, entry, dataset))


def results_run(config: Mapping[str, Any], run: VariantRun, dataset: str) -> str:
    """The ``{model}`` value whose results are ``run``'s on ``dataset``: the base model's own run
    when the run trains under the master seed and its variant changes nothing there, else the
    run itself."""
    unchanged = not effective_overrides(run.model, config["models"][run.model],
                                        overrides(config, run.variant), dataset)
    return run.model if unchanged and run.seed == config["seed"] else run.name


def _resolve_variant(config: Mapping[str, Any], variant: str, model: str,
                     dataset: str) -> ResolvedSettings:
    """The base model's layers on ``dataset``, then the variant's effective overrides."""
    base = config["models"][model]
    changed = effective_overrides(model, base, overrides(config, variant), dataset)
    return resolve_layers(model, [*model_layers(model, base, dataset),
                                  SettingsLayer(changed, f"ablations.variants.{variant}")])


def effective_overrides(model: str, base: Mapping[str, Any], declared: Mapping[str, Any],
                        dataset: str) -> dict[str, Any]:
    """The declared overrides whose value differs from the base model's on ``dataset`` (its
    resolved setting, else the default of the model's config class or of TrainConfig)."""
    settings = resolve_settings(model, base, dataset)
    current = {**_defaults(model), **settings.architecture, **settings.training}
    return {key: value for key, value in declared.items()
            if key not in current or not _same(value, current[key])}


def _defaults(model: str) -> dict[str, Any]:
    config_class = cast(Any, MODELS[model]).config_class
    fields = [*dataclasses.fields(config_class), *dataclasses.fields(TrainConfig)]
    return {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: lists and tuples alike, a bool never equal to a number."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def ablation_datasets(config: Mapping[str, Any]) -> list[str]:
    """The datasets the ablation runs on: those of run.datasets that ``ablations.datasets``
    names, in run.datasets' order (all of them without it; none without the block)."""
    block = config.get("ablations")
    if not block:
        return []
    chosen = block.get("datasets")
    return [d for d in config["run"]["datasets"] if chosen is None or d in chosen]


def check_variants(config: Mapping[str, Any]) -> None:
    """Every variant's keys and values, on every dataset the run selects (and every dataset
    its base model has per_dataset overrides for); ConfigError names the full key path
    (``ablations.variants.<name>.<key>``, or the base model's key where that one is at fault).

    The names (declared base model, no clash with a model) are checked by hybridrec.config.
    """
    block = config.get("ablations")
    if not block:
        return
    for variant, entry in block["variants"].items():
        model = entry["model"]
        declared = overrides(config, variant)
        _check_keys(variant, model, declared)
        base = config["models"][model]
        for dataset in dict.fromkeys([*config["run"]["datasets"], *base.get("per_dataset", {})]):
            check_resolved(_resolve_variant(config, variant, model, dataset))


def _check_keys(variant: str, model: str, declared: Mapping[str, Any]) -> None:
    allowed = sorted({*hyperparameter_names(model), *TRAIN_KEYS} - PIPELINE_KEYS)
    for key in declared:
        path = variant_key_path(variant, key)
        if key == "per_dataset":
            raise ConfigError(f"{path}: a variant takes flat keys only; it inherits "
                              f"models.{model}.per_dataset, and its own keys win over it")
        if key == "seed":
            raise ConfigError(f"{path}: a variant's seeds are ablations.seeds")
        if key in PIPELINE_KEYS:
            raise ConfigError(f"{path}: set by the pipeline, not per model")
        if key not in allowed:
            near = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{path}: unknown key for model {model!r}{hint}; its keys: "
                              f"{allowed}")


def trained_runs(config: Mapping[str, Any], dataset: str) -> list[VariantRun]:
    """The ablation's runs trained on ``dataset``: every run where the ablation runs on it,
    except those read from their base model's run (:func:`results_run`)."""
    if dataset not in ablation_datasets(config):
        return []
    return [run for run in variant_runs(config) if results_run(config, run, dataset) == run.name]
