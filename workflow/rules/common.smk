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


PACKAGE_VERSION = hybridrec.__version__
DATASETS = config["run"]["datasets"]
MODELS = config["run"]["models"]
EVAL_SPLITS = ["valid", "test"]
BRANCHES = config["hybrid"]["branches"]


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def interactions_config(wildcards):
    """The dataset entry without its item text, which preprocessing never reads (so declaring
    item text reruns nothing but embed_items)."""
    return {k: v for k, v in dataset_config(wildcards).items() if k != "item_text"}


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


def item_text_config(wildcards):
    """The dataset's `item_text` entry; embed_items needs one."""
    from hybridrec.errors import ConfigError

    entry = dataset_config(wildcards).get("item_text")
    if not entry:
        raise ConfigError(
            f"datasets.{wildcards.dataset}.item_text: not declared, so "
            f"results/text/{wildcards.dataset}/item_embeddings.parquet cannot be made"
        )
    return entry


def item_text_input(wildcards):
    """The files the dataset's item-text reader opens (none for generated demo text)."""
    from hybridrec.data.item_text import item_text_files

    entry = item_text_config(wildcards)
    if entry["format"] == "demo":
        return []
    return [str(p) for p in item_text_files(entry["path"], entry["format"], entry["options"])]


def demo_text_settings(wildcards):
    """The demo block that generated item text is drawn from (None for text read from files)."""
    if item_text_config(wildcards)["format"] != "demo":
        return None
    return dataset_config(wildcards)["demo"]


def text_encoder():
    """The `text.encoder` keys its kind uses (a change of an unused key reruns nothing)."""
    from dataclasses import asdict

    from hybridrec.text.encoders import EncoderSpec

    return asdict(EncoderSpec.from_config(config["text"]["encoder"]))


def model_settings(wildcards):
    """Architecture and training settings of one model on one dataset (reruns on change)."""
    from dataclasses import asdict

    from hybridrec.training.settings import resolve_settings

    entry = config["models"][wildcards.model]
    return asdict(resolve_settings(wildcards.model, entry, wildcards.dataset))


def validation_candidates(dataset):
    protocol = config["evaluation"]["protocol"]
    if protocol == "full":
        return []
    return f"results/data/{dataset}/candidates/valid.{protocol}.parquet"


def branch_predictions(wildcards):
    """Each fused branch's export for one dataset and split, in hybrid.branches order."""
    return [
        f"results/predictions/{wildcards.dataset}/{branch}/{wildcards.split}.parquet"
        for branch in BRANCHES
    ]


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
