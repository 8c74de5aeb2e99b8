"""The published results bundle of one dataset: ``docs/results/{dataset}/``, from a finished run.

Written by the ``results_bundle`` rule (so Snakemake first brings every input up to date with the
config and the code), never by hand:

- ``tables/<table>.csv`` and ``.md``: each result table's rows for this dataset;
- ``figures/``: the learning curves and the hybrid stage's figures;
- ``metrics/<model>.json``: every metric of every model, each under its protocol;
- ``comparison.csv`` and ``.md``: every published figure that applies to the dataset beside ours,
  under its own protocol, with the difference (:mod:`hybridrec.reporting.comparison`);
- ``provenance.json``: per model the epochs run, the best epoch, why training stopped and the
  training seconds; the code hash, config values and package versions of every file bundled (from
  the files' own provenance records); the machine;
- ``README.md``: the same, for reading.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hybridrec.io import atomic_path, write_csv, write_json, write_text
from hybridrec.models.files import read_model
from hybridrec.plain import plain
from hybridrec.provenance import read_provenance
from hybridrec.reporting.comparison import NOTABLE, comparison_table


def dataset_rows(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The rows of a result table that belong to ``dataset`` (all rows of a table without a
    ``dataset`` column)."""
    if "dataset" not in table.columns:
        return table
    return table[table["dataset"] == dataset].reset_index(drop=True)


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table; floats with ``digits`` decimals, missing values empty."""
    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def training_summary(model_path: str | Path, history_path: str | Path) -> dict[str, Any]:
    """Epochs run, the epoch selected under each protocol, stop reason and seconds of one
    trained model."""
    saved = read_model(model_path)
    history = pd.read_parquet(history_path)
    patience = int(saved.training.get("patience", 10))
    budget = int(saved.training.get("epochs", len(history)))
    epochs_run = saved.epochs_run
    if saved.stopped_early:
        stop = f"early stopping: every protocol {patience} epochs or more without gain"
    elif epochs_run >= budget:
        stop = f"epoch budget {budget} reached"
    else:
        stop = f"stopped by hand after {epochs_run} of {budget} epochs"
    return {"model": saved.name, "epochs_run": epochs_run, "best_epoch": saved.epoch_of(),
            "selected_epochs": {name: s.epoch for name, s in saved.selections.items()},
            "epoch_budget": budget, "patience": patience, "stop": stop,
            "training_seconds": round(saved.seconds, 1),
            "best_validation": {name: s.metrics for name, s in saved.selections.items()},
            "architecture": plain(saved.architecture), "training": plain(saved.training)}


def machine() -> dict[str, Any]:
    """What the bundle was computed on (CPU model, cores, memory, accelerator)."""
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


def write_bundle(out_dir: str | Path, dataset: str, *, tables: Sequence[str | Path],
                 figures: Sequence[str | Path], metrics: Mapping[str, str | Path],
                 models: Mapping[str, tuple[str | Path, str | Path]],
                 config: Mapping[str, Any]) -> None:
    """Write ``out_dir`` from a finished run's files (``models``: name -> (model.pt, history))."""
    out = Path(out_dir)
    sources: dict[str, dict[str, Any]] = {}
    sections = [f"# Results: {dataset}\n",
                "Written by `snakemake docs/results/{dataset}` (rule `results_bundle`) from a "
                "finished run; every number below is computed by the pipeline. "
                "`provenance.json` names the code, config and machine.\n".replace(
                    "{dataset}", dataset)]

    trained = {name: training_summary(*paths) for name, paths in models.items()}
    sections.append("## Training\n")
    sections.append(markdown_table(pd.DataFrame([
        {"model": s["model"], "epochs run": s["epochs_run"],
         "selected epochs": ", ".join(f"{k} {v}" for k, v in s["selected_epochs"].items()),
         "stop": s["stop"], "training s": s["training_seconds"]} for s in trained.values()]),
        digits=1))

    sections.append("## Tables\n")
    table_rows: dict[str, pd.DataFrame] = {}
    for table_path in tables:
        name = Path(table_path).stem
        rows = table_rows[name] = dataset_rows(pd.read_csv(table_path), dataset)
        write_csv(rows, out / "tables" / f"{name}.csv")
        write_text(markdown_table(rows), out / "tables" / f"{name}.md")
        sections.append(f"### {name}\n\n{markdown_table(rows)}")
        sources[f"tables/{name}.csv"] = read_provenance(table_path)

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

    for name, path in metrics.items():
        _copy(path, out / "metrics" / f"{name}.json")
        sources[f"metrics/{name}.json"] = read_provenance(path)
    for name, (model_path, _) in models.items():
        sources[f"models/{name}"] = read_provenance(model_path)

    code = {f"{record['rule']}{_wildcard_suffix(record)}": record["params"]["code"]
            for record in sources.values() if "code" in record.get("params", {})}
    packages = {json.dumps(record["packages"], sort_keys=True) for record in sources.values()}
    record = {"dataset": dataset, "training": trained, "code": dict(sorted(code.items())),
              "packages": [json.loads(p) for p in sorted(packages)], "machine": machine(),
              "config": plain(config), "files": sources}
    write_json(record, out / "provenance.json")
    sections.append("## Code\n")
    sections.append(markdown_table(pd.DataFrame(
        [{"rule": rule, "code hash": digest[:16]} for rule, digest in record["code"].items()])))
    write_text("\n".join(sections), out / "README.md")


def _wildcard_suffix(record: Mapping[str, Any]) -> str:
    wildcards = record.get("wildcards") or {}
    return f"[{','.join(f'{k}={v}' for k, v in sorted(wildcards.items()))}]" if wildcards else ""
