# Config validation, wildcard constraints and the input functions every stage file calls.
import os
import re
from pathlib import Path

from snakemake.utils import validate

import hybridrec
from hybridrec.config import check_config

validate(config, schema="../schemas/config.schema.yaml")
check_config(config)


wildcard_constraints:
    dataset="|".join(map(re.escape, config["datasets"])),
    split="valid|test",
    model="|".join(map(re.escape, config["models"])),
    protocol="full|uniform99|pop100|paper",


PACKAGE_VERSION = hybridrec.__version__
DATASETS = config["run"]["datasets"]
MODELS = config["run"]["models"]
EVAL_SPLITS = ["valid", "test"]
BRANCHES = config["hybrid"]["branches"]
HYBRID_PROTOCOLS = config["hybrid"]["protocols"]


def branch_protocols(protocol):
    """The export protocol of each branch in one hybrid run (``paper``: each its paper's own)."""
    from hybridrec.reporting.paper import PAPER, PAPER_PROTOCOLS

    return {b: PAPER_PROTOCOLS[b] if protocol == PAPER else protocol for b in BRANCHES}


# every protocol some hybrid run reads an export of, in a stable order
EXPORT_PROTOCOLS = list(
    dict.fromkeys(p for h in HYBRID_PROTOCOLS for p in branch_protocols(h).values())
)
HYBRID_RUNS = [(d, p) for d in DATASETS for p in HYBRID_PROTOCOLS]


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def raw_input(wildcards):
    """The raw file preprocessing reads: a local path, a downloaded file, or none (demo)."""
    ds = dataset_config(wildcards)
    if ds["format"] == "demo":
        return []
    if ds.get("path"):
        return ds["path"]
    if ds.get("archive_member"):
        return f"resources/{wildcards.dataset}/{Path(ds['archive_member']).name}"
    return f"resources/{wildcards.dataset}/download/{Path(ds['url']).name}"


def dataset_outputs(dataset):
    from hybridrec.data.store import dataset_files

    return [str(p) for p in dataset_files(f"results/data/{dataset}").values()]


def model_settings(wildcards):
    """Architecture and training settings of one model on one dataset (reruns on change)."""
    from dataclasses import asdict

    from hybridrec.training.settings import resolve_settings

    entry = config["models"][wildcards.model]
    return asdict(resolve_settings(wildcards.model, entry, wildcards.dataset))


def validation_candidates(dataset):
    """The candidates training validates on (evaluation.protocol; none under full ranking)."""
    protocol = config["evaluation"]["protocol"]
    if protocol == "full":
        return []
    return f"results/data/{dataset}/candidates/valid.{protocol}.parquet"


def branch_predictions(wildcards):
    """Each fused branch's export for one hybrid run and split, in hybrid.branches order."""
    return [
        f"results/predictions/{wildcards.dataset}/{branch}/{protocol}/{wildcards.split}.parquet"
        for branch, protocol in branch_protocols(wildcards.protocol).items()
    ]


def hybrid_run_files(pattern):
    """``pattern`` (with {dataset} and {protocol}) for every hybrid run, in report order."""
    return [pattern.format(dataset=d, protocol=p) for d, p in HYBRID_RUNS]


REPORT_TABLES = [
    f"results/tables/{name}.csv"
    for name in ("table1", "table2", "table3", "table4", "table5", "table5_extended", "table6")
]
# each table's caption, as the report shows it beside the CSV file
TABLE_CAPTIONS = {
    Path(table).name: Path(workflow.basedir, "workflow/report", f"{Path(table).stem}.rst")
    .read_text()
    .strip()
    for table in REPORT_TABLES
}


def all_targets():
    return [
        "results/report/tables.html",
        "results/report/config.html",
        "results/tables/table4.csv",
        "results/tables/table5.csv",
        "results/tables/table1.csv",
        "results/tables/table2.csv",
        "results/tables/table3.csv",
        *expand(
            "results/figures/learning_curve_{dataset}_{model}.png",
            dataset=DATASETS,
            model=MODELS,
        ),
    ]
