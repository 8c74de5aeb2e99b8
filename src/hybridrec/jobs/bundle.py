"""Published results bundles: ``docs/results/{dataset}/``, written from a finished run, and the
weights a later run can start from instead of training.

Written by the ``results_bundle`` rule (so Snakemake first brings every input up to date with the
config and the code), never by hand:

- ``tables/<table>.csv`` and ``.md``: each result table's rows for this dataset (a table without
  a row for it is listed as not run, never written empty);
- ``figures/``: the learning curves and the hybrid stage's figures;
- ``metrics/<model>.json``: every metric of every model, each under its protocol;
- ``models/<model>.pt`` and ``models/<model>.history.parquet``: each model's trained weights
  (one state dict per selected epoch, :mod:`hybridrec.models.files`; no optimiser state) and its
  learning curve;
- ``tables/ablation.csv`` and ``.md`` where the ablation runs on the dataset (``ablations``,
  :func:`hybridrec.variants.ablation_datasets`): the ablation table, its runs' weights and
  metrics beside the models' (``<variant>.s<seed>``);
- ``comparison.csv`` and ``.md``: every published figure that applies to the dataset beside ours,
  under its own protocol, with the difference (:mod:`hybridrec.reporting.comparison`);
- ``provenance.json``: per model the epochs run, the epoch selected under each protocol, why
  training stopped and the training seconds; the weights files with their sha256 and the
  settings that built them; the code hash, config values and package versions of every file
  bundled (from the files' own provenance records); the machine;
- ``README.md``: the same, for reading.

``datasets.<name>.weights_from: docs/results/<bundle>`` makes a run take each model's weights
from a bundle instead of training it (the ``import_weights`` rule). :func:`check_weights_from`
refuses, before any job, a bundle whose weights file is missing or damaged, whose checksum
differs, or whose settings differ from those the config would train with, naming the file and
the keys; the weights then load strictly into the model the config builds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from hybridrec.config import dataset_models
from hybridrec.errors import ConfigError
from hybridrec.io import atomic_path, file_checksum, write_csv, write_json, write_text
from hybridrec.models import MODELS
from hybridrec.models.files import SavedModel, read_model
from hybridrec.plain import plain
from hybridrec.provenance import read_provenance
from hybridrec.reporting.ablation import ablation_markdown
from hybridrec.reporting.comparison import NOTABLE, comparison_table
from hybridrec.reporting.markdown import dataset_rows, markdown_table
from hybridrec.training.config import TrainConfig
from hybridrec.training.settings import PIPELINE_KEYS, ModelSettings, ResolvedSettings
from hybridrec.variants import ablation_datasets

RECORD = "provenance.json"
REPUBLISH = "HYBRIDREC_REPUBLISH"
"""Environment variable naming the bundles (``docs/results/<dataset>``, comma-separated) that a
run may overwrite although the settings they record differ: republishing on purpose."""


# ------------------------------------------------------------------------------ writing


def training_summary(saved: SavedModel) -> dict[str, Any]:
    """Epochs run, the epoch selected under each protocol, stop reason and seconds of one
    trained model."""
    patience = int(saved.training.get("patience", 10))
    budget = int(saved.training.get("epochs", saved.epochs_run))
    if saved.stopped_early:
        stop = f"early stopping: every protocol {patience} epochs or more without gain"
    elif saved.epochs_run >= budget:
        stop = f"epoch budget {budget} reached"
    else:
        stop = f"stopped by hand after {saved.epochs_run} of {budget} epochs"
    return {"model": saved.name, "epochs_run": saved.epochs_run, "best_epoch": saved.epoch_of(),
            "selected_epochs": {name: s.epoch for name, s in saved.selections.items()},
            "epoch_budget": budget, "patience": patience, "stop": stop,
            "training_seconds": round(saved.seconds, 1),
            "best_validation": {name: s.metrics for name, s in saved.selections.items()},
            "architecture": plain(saved.architecture), "training": plain(saved.training)}


def machine() -> dict[str, Any]:
    """What the bundle was computed on (CPU model, cores, memory, accelerator)."""
    import torch

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    memory = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    return {"system": platform.system(), "machine": platform.machine(), "cpu": cpu,
            "cores": os.cpu_count(), "memory_gib": memory, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _copy(source: str | Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _sha256(path: str | Path) -> str:
    return file_checksum(path).removeprefix("sha256:")


def _weights_record(name: str, saved: SavedModel, out: Path) -> dict[str, Any]:
    """What ``provenance.json`` says of one model's published weights."""
    trained = json.loads(saved.provenance) if saved.provenance else {}
    return {"file": f"models/{name}.pt", "sha256": _sha256(out / "models" / f"{name}.pt"),
            "history": f"models/{name}.history.parquet",
            "history_sha256": _sha256(out / "models" / f"{name}.history.parquet"),
            "architecture": plain(saved.architecture), "training": plain(saved.training),
            "primary": saved.primary,
            "selected_epochs": {k: s.epoch for k, s in saved.selections.items()},
            "item_text": saved.item_text,
            "trained_by": {"rule": trained.get("rule"), "wildcards": trained.get("wildcards"),
                           "code": trained.get("params", {}).get("code"),
                           "seed": trained.get("params", {}).get("seed"),
                           "packages": trained.get("packages")}}


def _tables_section(tables: Sequence[str | Path], dataset: str, out: Path,
                    sources: dict[str, Any]) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """Each table's rows for ``dataset`` (CSV and Markdown); a table without one is listed as
    not run."""
    sections, rows_of, empty = ["## Tables\n"], {}, []
    for table_path in tables:
        name = Path(table_path).stem
        rows = dataset_rows(pd.read_csv(table_path), dataset)
        if rows.empty:
            empty.append(name)
            continue
        rows_of[name] = rows
        write_csv(rows, out / "tables" / f"{name}.csv")
        write_text(markdown_table(rows), out / "tables" / f"{name}.md")
        sections.append(f"### {name}\n\n{markdown_table(rows)}")
        sources[f"tables/{name}.csv"] = read_provenance(table_path)
    if empty:
        sections.append(f"Not run for {dataset} (no row): {', '.join(empty)}.\n")
    return sections, rows_of


def write_bundle(out_dir: str | Path, dataset: str, *, tables: Sequence[str | Path],
                 figures: Sequence[str | Path], metrics: Mapping[str, str | Path],
                 models: Mapping[str, tuple[str | Path, str | Path]],
                 config: Mapping[str, Any], ablation: str | Path | None = None,
                 ablation_runs: Mapping[str, tuple[str | Path, str | Path, str | Path]]
                 | None = None) -> None:
    """Write ``out_dir`` from a finished run's files (``models``: name -> (model.pt, history)).

    ``ablation``: the dataset's ablation table, published as ``tables/ablation``; its runs of
    their own (``ablation_runs``: run name -> (model.pt, history, metrics)) are published like
    the models, weights and metrics, and left out of the comparison with the papers."""
    out = Path(out_dir)
    sources: dict[str, dict[str, Any]] = {}
    runs = dict(ablation_runs or {})
    models = {**models, **{name: (model, history) for name, (model, history, _) in runs.items()}}
    saved = {name: read_model(paths[0]) for name, paths in models.items()}
    trained = {name: training_summary(model) for name, model in saved.items()}
    sections = [f"# Results: {dataset}\n",
                f"Written by `snakemake docs/results/{dataset}` (rule `results_bundle`) from a "
                "finished run; every number below is computed by the pipeline. "
                f"`{RECORD}` names the code, config and machine, and the sha256 of every "
                "model's weights in `models/`.\n",
                "## Training\n",
                markdown_table(pd.DataFrame([
                    {"model": name, "epochs run": s["epochs_run"],
                     "selected epochs": ", ".join(f"{k} {v}"
                                                  for k, v in s["selected_epochs"].items()),
                     "stop": s["stop"], "training s": s["training_seconds"]}
                    for name, s in trained.items()]), digits=1)]

    table_sections, table_rows = _tables_section(tables, dataset, out, sources)
    sections += table_sections
    if ablation is not None:
        rows = pd.read_csv(ablation)
        readable = ablation_markdown(rows)
        write_csv(rows, out / "tables" / "ablation.csv")
        write_text(readable, out / "tables" / "ablation.md")
        sources["tables/ablation.csv"] = read_provenance(ablation)
        sections.append(f"### ablation\n\n{readable}")

    paper_dataset = config["datasets"][dataset].get("paper")
    reports = {name: json.loads(Path(path).read_text()) for name, path in metrics.items()}
    comparison = comparison_table(paper_dataset, reports, table_rows.get("table5"),
                                  table_rows.get("table6"))
    write_csv(comparison, out / "comparison.csv")
    write_text(markdown_table(comparison), out / "comparison.md")
    sections.append("## Published figures beside ours\n")
    sections.append(
        f"Each under the protocol it was published under (test split); a difference above "
        f"{NOTABLE} is marked in `note`.\n\n{markdown_table(comparison)}" if len(comparison)
        else f"No published figure applies: {dataset} is none of the papers' datasets.\n")

    sections.append("## Figures\n")
    for figure in figures:
        target = out / "figures" / Path(figure).name
        _copy(figure, target)
        sources[f"figures/{target.name}"] = read_provenance(figure)
        sections.append(f"![{target.stem}](figures/{target.name})\n")

    for name, path in {**metrics, **{name: run[2] for name, run in runs.items()}}.items():
        _copy(path, out / "metrics" / f"{name}.json")
        sources[f"metrics/{name}.json"] = read_provenance(path)
    weights = {}
    for name, (model_path, history_path) in models.items():
        _copy(model_path, out / "models" / f"{name}.pt")
        _copy(history_path, out / "models" / f"{name}.history.parquet")
        sources[f"models/{name}.pt"] = read_provenance(model_path)
        weights[name] = _weights_record(name, saved[name], out)

    code = {f"{record['rule']}{_wildcard_suffix(record)}": record["params"]["code"]
            for record in sources.values() if "code" in record.get("params", {})}
    packages = {json.dumps(record["packages"], sort_keys=True) for record in sources.values()}
    record = {"dataset": dataset, "training": trained, "weights": weights,
              "code": dict(sorted(code.items())),
              "packages": [json.loads(p) for p in sorted(packages)], "machine": machine(),
              "config": plain(config), "files": sources}
    write_json(record, out / RECORD)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    sections.append("## Weights\n")
    sections.append(markdown_table(pd.DataFrame(
        [{"model": name, "file": w["file"], "sha256": w["sha256"][:16],
          "selected epochs": ", ".join(f"{k} {v}" for k, v in w["selected_epochs"].items())}
         for name, w in weights.items()])))
    sections.append(f"Start a run from them with `datasets.{dataset}.weights_from: "
                    f"docs/results/{dataset}`. The bundle holds {size / 2**20:.1f} MiB.\n")
    sections.append("## Code\n")
    sections.append(markdown_table(pd.DataFrame(
        [{"rule": rule, "code hash": digest[:16]} for rule, digest in record["code"].items()])))
    write_text("\n".join(sections), out / "README.md")


def _wildcard_suffix(record: Mapping[str, Any]) -> str:
    wildcards = record.get("wildcards") or {}
    return f"[{','.join(f'{k}={v}' for k, v in sorted(wildcards.items()))}]" if wildcards else ""


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class PublishedWeights:
    """One model's weights in a bundle, checked: the files and their sha256."""

    model: str
    path: Path
    sha256: str
    history: Path
    history_sha256: str

    def __post_init__(self) -> None:  # built from a job's params, the paths are strings
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "history", Path(self.history))


def bundle_record(bundle: str | Path) -> dict[str, Any]:
    """A bundle's ``provenance.json``; ConfigError naming it when missing or unreadable."""
    path = Path(bundle) / RECORD
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; a results bundle written by "
                          "`snakemake docs/results/<dataset>` has one") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: unreadable ({error})") from error
    return record


def _verify(path: Path, expected: str, key: str) -> None:
    if not path.is_file():
        raise ConfigError(f"{key}: {path} is missing")
    if (actual := _sha256(path)) != expected:
        raise ConfigError(f"{key}: {path} has sha256 {actual}, but the bundle's {RECORD} "
                          f"records {expected}: the file is damaged or was replaced")


def _effective_training(training: Mapping[str, Any]) -> dict[str, Any]:
    """Training settings with TrainConfig's defaults filled in (the pipeline's own keys out)."""
    values = dataclasses.asdict(TrainConfig(**training))
    return plain({k: v for k, v in values.items() if k not in PIPELINE_KEYS})


def _effective_architecture(name: str, architecture: Mapping[str, Any]) -> dict[str, Any]:
    config_class = cast(Any, MODELS[name]).config_class
    values = dataclasses.asdict(config_class(num_items=1, **architecture))
    return plain({k: v for k, v in values.items() if k != "num_items"})


def settings_differences(settings: ModelSettings, published: Mapping[str, Any],
                         paths: Mapping[str, str]) -> list[str]:
    """``key path: configured vs published`` for every setting that differs (a text-aware
    model's ``text_dim`` follows its embeddings file unless configured)."""
    ours = {**_effective_architecture(settings.name, settings.architecture),
            **_effective_training(settings.training)}
    theirs = {**plain(published["architecture"]), **_effective_training(published["training"])}
    if "text_dim" not in settings.architecture:
        ours.pop("text_dim", None)
        theirs.pop("text_dim", None)
    default = f"models.{settings.name}"
    return [f"{paths.get(key, f'{default}.{key}')}: {ours.get(key)!r} here, "
            f"{theirs.get(key)!r} in the bundle"
            for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key)]


def _data_differences(dataset: str, entry: Mapping[str, Any], seed: int,
                      recorded: Mapping[str, Any]) -> list[str]:
    """The data settings the weights depend on (the interactions, the item ids, the seed)."""
    skip = {"weights_from", "item_text"}
    theirs = recorded.get("datasets", {}).get(dataset)
    if theirs is None:
        return [f"datasets.{dataset}: not in the bundle's config"]
    found = [f"datasets.{dataset}.{key}: {entry.get(key)!r} here, {theirs.get(key)!r} in the "
             "bundle" for key in sorted((set(entry) | set(theirs)) - skip)
             if plain(entry.get(key)) != plain(theirs.get(key))]
    if recorded.get("seed") != seed:
        found.append(f"seed: {seed!r} here, {recorded.get('seed')!r} in the bundle")
    return found


def _text_differences(dataset: str, entry: Mapping[str, Any], text: Mapping[str, Any],
                      recorded: Mapping[str, Any]) -> list[str]:
    """The item text a text-aware model was trained with: the dataset's text and the encoder."""
    theirs_text = recorded.get("datasets", {}).get(dataset, {}).get("item_text")
    found = []
    if plain(entry.get("item_text")) != plain(theirs_text):
        found.append(f"datasets.{dataset}.item_text: differs from the bundle's")
    if plain(text.get("encoder")) != plain(recorded.get("text", {}).get("encoder")):
        found.append(f"text.encoder: {plain(text.get('encoder'))!r} here, "
                     f"{plain(recorded.get('text', {}).get('encoder'))!r} in the bundle")
    return found


def check_weights_from(config: Mapping[str, Any], dataset: str,
                       resolved: Mapping[str, ResolvedSettings],
                       selection_protocols: Sequence[str]) -> dict[str, PublishedWeights]:
    """Every run of ``resolved`` in the bundle ``datasets.<dataset>.weights_from`` names, its
    files verified and its settings equal to the config's (``resolved``: each ``{model}`` value,
    the dataset's models and the ablation's runs trained there, to its settings on ``dataset``
    and the key path of each). Raises ConfigError naming the bundle file and every differing
    key."""
    entry = config["datasets"][dataset]
    bundle = Path(entry["weights_from"])
    key = f"datasets.{dataset}.weights_from"
    record = bundle_record(bundle)
    published = record.get("weights", {})
    recorded = record.get("config", {})
    problems = _data_differences(dataset, entry, config["seed"], recorded)
    found = {}
    for model, run in resolved.items():
        if model not in published:
            problems.append(f"{bundle / RECORD}: no weights for model {model!r} (the bundle has "
                            f"{sorted(published) or 'none'})")
            continue
        weights = published[model]
        problems += settings_differences(run.settings, weights, run.paths)
        missing = [p for p in selection_protocols if p not in weights["selected_epochs"]]
        if missing:
            problems.append(f"{bundle / weights['file']}: selected under "
                            f"{sorted(weights['selected_epochs'])}, not under {missing} "
                            "(evaluation.protocols and hybrid.protocols ask for them)")
        if MODELS[run.settings.name].needs_item_text and weights.get("item_text"):
            problems += _text_differences(dataset, entry, config.get("text", {}), recorded)
        found[model] = PublishedWeights(model, bundle / weights["file"], weights["sha256"],
                                        bundle / weights["history"], weights["history_sha256"])
    if problems:
        raise ConfigError(f"{key}: the weights in {bundle} cannot stand for this config "
                          "(start a run that trains instead by removing the key):\n  "
                          + "\n  ".join(problems))
    for weights in found.values():
        _verify(weights.path, weights.sha256, key)
        _verify(weights.history, weights.history_sha256, key)
    return found


def import_weights(source: PublishedWeights, model_path: str | Path,
                   history_path: str | Path) -> None:
    """The import_weights job: copy a bundle's model file and learning curve into the run, after
    checking their sha256 again (they may have changed since the config was checked)."""
    key = f"weights of {source.model}"
    _verify(source.path, source.sha256, key)
    _verify(source.history, source.history_sha256, key)
    read_model(source.path)  # a readable model file of the current format
    _copy(source.path, Path(model_path))
    _copy(source.history, Path(history_path))


# ------------------------------------------------------------------------------ publishing


def check_bundle_target(dataset: str, config: Mapping[str, Any], bundle: str | Path,
                        environ: Mapping[str, str] = os.environ) -> None:
    """Refuse to write ``docs/results/<dataset>`` unless the run computes that dataset and, where
    a bundle is already there, records the settings this run has (or ``HYBRIDREC_REPUBLISH``
    names it). Raises ConfigError naming the dataset, the key and the differing settings."""
    declared, run = config["datasets"], config["run"]["datasets"]
    if dataset not in declared:
        raise ConfigError(f"{bundle}: no dataset {dataset!r} is declared under `datasets` "
                          f"(declared: {sorted(declared)})")
    if dataset not in run:
        raise ConfigError(f"{bundle}: dataset {dataset!r} is not in run.datasets {list(run)}; "
                          "a bundle is written from a run of its dataset")
    existing = Path(bundle) / RECORD
    if not existing.exists():
        return
    republish = {name.strip().rstrip("/") for name in environ.get(REPUBLISH, "").split(",")}
    if str(bundle).rstrip("/") in republish:
        return
    recorded = bundle_record(bundle).get("config", {})
    differing = published_settings_differences(dataset, config, recorded)
    if differing:
        raise ConfigError(
            f"{bundle} is a published bundle made with other settings than this run's; it is "
            f"not replaced. Differing: {', '.join(differing)}. To republish it on purpose, "
            f"run with {REPUBLISH}={bundle}")


def _bundle_view(dataset: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a dataset's bundle depends on, as flat key paths."""
    models = dataset_models(config, dataset)
    view: dict[str, Any] = {"seed": config.get("seed"), "run.models": models}
    for section in ("evaluation", "gate_search", "text", "training"):
        view.update(_flatten(config.get(section, {}), section))
    view.update(_flatten(_hybrid_on(dataset, config.get("hybrid", {})), "hybrid"))
    if dataset in ablation_datasets(config):  # where else it runs: no setting of this bundle
        block = {k: v for k, v in config["ablations"].items() if k != "datasets"}
        view.update(_flatten(block, "ablations"))
    entry = {k: v for k, v in config["datasets"].get(dataset, {}).items()
             if k not in ("weights_from", "models")}  # the dataset's models: run.models above
    view.update(_flatten(entry, f"datasets.{dataset}"))
    for model in models:
        entry = dict(config["models"].get(model, {}))
        own = entry.pop("per_dataset", {}).get(dataset, {})  # other datasets' overrides: out
        view.update(_flatten(entry, f"models.{model}"))
        view.update(_flatten(own, f"models.{model}.per_dataset.{dataset}"))
    return plain(view)


def _hybrid_on(dataset: str, hybrid: Mapping[str, Any]) -> dict[str, Any]:
    """The hybrid settings of ``dataset``'s runs: the variants that run on it (no ``datasets``,
    or one naming it), each without ``datasets``, so where else a variant runs is no setting of
    this dataset's bundle."""
    variants = {name: {k: v for k, v in entry.items() if k != "datasets"}
                for name, entry in hybrid.get("variants", {}).items()
                if dataset in entry.get("datasets", [dataset])}
    settings = {key: value for key, value in hybrid.items() if key != "variants"}
    return {**settings, "variants": variants} if variants else settings


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        return {k: v for key, item in value.items()
                for k, v in _flatten(item, f"{prefix}.{key}").items()}
    return {prefix: value}


def published_settings_differences(dataset: str, config: Mapping[str, Any],
                                   recorded: Mapping[str, Any]) -> list[str]:
    """The key paths whose values differ between this config and a bundle's recorded one."""
    ours, theirs = _bundle_view(dataset, config), _bundle_view(dataset, recorded)
    return [key for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key)]
