# Config validation, wildcard constraints and the input functions every stage file calls.
import os
import re
from pathlib import Path

from snakemake.utils import validate

from hybridrec.codehash import code_hash
from hybridrec.config import check_config, dataset_models, normalise_numbers
from hybridrec.jobs.bundle import check_weights_from
from hybridrec.protocols import HYBRID_PROTOCOLS as HYBRID_PROTOCOL_NAMES
from hybridrec.protocols import PAPER, PAPER_PROTOCOLS, SAMPLED_PROTOCOLS
from hybridrec.variants import ablation_datasets, run_settings, trained_runs, variant_runs

# integral floats become ints, and `1e-3` strings are named, before the schema sees them
normalise_numbers(config, workflow.source_path("../schemas/config.schema.yaml"))
validate(config, schema="../schemas/config.schema.yaml")
check_config(config)

# the ablations block's variant x seed runs by name (<variant>.s<seed>; none without the block):
# {model} values beside the declared models (hybridrec.variants)
VARIANT_RUNS = {run.name: run for run in variant_runs(config)}


wildcard_constraints:
    dataset="|".join(map(re.escape, config["datasets"])),
    split="valid|test",
    model="|".join(map(re.escape, [*config["models"], *VARIANT_RUNS])),
    protocol="|".join(HYBRID_PROTOCOL_NAMES),


DATASETS = config["run"]["datasets"]
MODELS = config["run"]["models"]


def models_of(dataset):
    """The run's models on ``dataset`` (hybridrec.config.dataset_models)."""
    return dataset_models(config, dataset)

EVAL_SPLITS = ["valid", "test"]
# each declared dataset's paper name, by name: a config layer that mentions a dataset reorders
# config["datasets"], which must rerun no table
PAPER_NAMES = {name: config["datasets"][name].get("paper") for name in sorted(config["datasets"])}
BRANCHES = config["hybrid"]["branches"]
HYBRID_PROTOCOLS = config["hybrid"]["protocols"]


def branch_protocols(protocol, branches=BRANCHES):
    """The export protocol of each branch in one hybrid run (``paper``: each its paper's own)."""
    return {b: PAPER_PROTOCOLS[b] if protocol == PAPER else protocol for b in branches}


def hybrid_branch_sets():
    """(branches, protocols) of the configured hybrid runs and of every variant that fuses
    other branches."""
    runs = [(BRANCHES, HYBRID_PROTOCOLS)]
    for entry in config["hybrid"]["variants"].values():
        if "branches" in entry:
            runs.append((entry["branches"], entry.get("protocols", HYBRID_PROTOCOLS)))
    return runs


# every protocol some hybrid run reads an export of, in a stable order
EXPORT_PROTOCOLS = list(
    dict.fromkeys(
        p
        for branches, protocols in hybrid_branch_sets()
        for h in protocols
        for p in branch_protocols(h, branches).values()
    )
)
HYBRID_RUNS = [(d, p) for d in DATASETS for p in HYBRID_PROTOCOLS]
# cores a training, evaluation or embedding job reserves: the threads it computes with
# (training.threads), or every core where that is 0 (--set-threads still overrides it)
JOB_THREADS = config["training"]["threads"] or workflow.cores
# every protocol a model is evaluated under, evaluation.protocol first: training keeps the best
# epoch under each (one run serves every protocol), and each protocol is scored with its own
SELECTION_PROTOCOLS = list(
    dict.fromkeys(
        [config["evaluation"]["protocol"], *config["evaluation"]["protocols"], *EXPORT_PROTOCOLS]
    )
)


# datasets.<name>.weights_from: the weights of the dataset's models and of the ablation's runs
# trained there, from a results bundle instead of training, checked here, before any job (files,
# checksums and settings; hybridrec.jobs.bundle)
WEIGHTS_FROM = {
    dataset: check_weights_from(
        config, dataset,
        {name: run_settings(config, name, dataset)
         for name in [*models_of(dataset), *(run.name for run in trained_runs(config, dataset))]},
        SELECTION_PROTOCOLS,
    )
    for dataset in DATASETS
    if config["datasets"][dataset].get("weights_from")
}


def one_of(names):
    """A wildcard constraint matching exactly ``names`` (and nothing when there are none)."""
    return "|".join(map(re.escape, names)) or "(?!)"


def published_weights(wildcards):
    """The import_weights job's source: a bundle's weights file and learning curve."""
    from dataclasses import asdict

    return {k: str(v) for k, v in asdict(WEIGHTS_FROM[wildcards.dataset][wildcards.model]).items()}


def script_path(script):
    """A workflow script as a local file: relative to this file, through Snakemake's source
    cache, so also when the workflow is a module imported from a git repository."""
    return Path(workflow.source_path(f"../scripts/{script}.py"))


def script_code(script):
    """Content hash of a script and the package modules it imports (hybridrec.codehash): a
    param of every rule that computes results, so a code change reruns what it touches."""
    return code_hash(script_path(script))


def model_script_code(script):
    """As script_code, with the module of the job's own model (and no other model's; a
    variant run's is its base model's)."""
    path = script_path(script)
    return lambda wildcards: code_hash(path, base_model(wildcards.model))


def base_model(model):
    """The declared model a {model} value trains: itself, or a variant run's base."""
    return VARIANT_RUNS[model].model if model in VARIANT_RUNS else model


def training_seed(wildcards):
    """The seed a {model} value trains with: the master seed, or a variant run's own."""
    run = VARIANT_RUNS.get(wildcards.model)
    return config["seed"] if run is None else run.seed


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def interactions_config(wildcards):
    """The dataset entry without what preprocessing never reads: its item text (so declaring
    item text reruns nothing but embed_items) and its models (datasets.<name>.models)."""
    return {k: v for k, v in dataset_config(wildcards).items() if k not in ("item_text", "models")}


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
    """What preprocessing writes for one dataset (candidates are drawn by their own rule)."""
    from hybridrec.data.store import dataset_files

    return [str(p) for p in dataset_files(f"results/data/{dataset}").values()]


def candidates_of(dataset, protocols):
    """The candidates files of the sampled protocols among ``protocols`` (full needs none)."""
    from hybridrec.data.store import candidate_files

    return [
        str(path)
        for protocol in protocols
        if protocol in SAMPLED_PROTOCOLS
        for path in candidate_files(f"results/data/{dataset}", protocol).values()
    ]


def evaluation_data(dataset):
    """The dataset files evaluation reads: every reported protocol's and every export's."""
    return dataset_outputs(dataset) + candidates_of(dataset, SELECTION_PROTOCOLS)


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
    """Architecture and training settings of one model on one dataset (reruns on change); a
    variant run's are its base model's with the variant's overrides, named after the base."""
    from dataclasses import asdict

    return asdict(run_settings(config, wildcards.model, wildcards.dataset).settings)


def item_text_embeddings(wildcards):
    """The item embeddings a text-aware model trains with (none for the others)."""
    from hybridrec.models import MODELS

    architecture = model_settings(wildcards)["architecture"]
    if MODELS[base_model(wildcards.model)].needs_item_text and architecture.get("text", True):
        return f"results/text/{wildcards.dataset}/item_embeddings.parquet"
    return []


def validation_candidates(dataset):
    """The validation candidates of every sampled protocol training selects under."""
    from hybridrec.data.store import candidate_files

    return [
        str(candidate_files(f"results/data/{dataset}", protocol)["valid"])
        for protocol in SELECTION_PROTOCOLS
        if protocol != "full"
    ]


def branch_predictions(wildcards):
    """Each fused branch's export for one hybrid run and split, in its branches' order."""
    branches = run_branches(wildcards)
    return [
        f"results/predictions/{wildcards.dataset}/{branch}/{protocol}/{wildcards.split}.parquet"
        for branch, protocol in branch_protocols(wildcards.protocol, branches).items()
    ]


def hybrid_run_files(pattern):
    """``pattern`` (with {dataset} and {protocol}) for every hybrid run, in report order."""
    return [pattern.format(dataset=d, protocol=p) for d, p in HYBRID_RUNS]


REPORT_TABLES = [
    f"results/tables/{name}.csv"
    for name in ("table1", "table2", "table3", "table4", "table5", "table5_extended", "table6",
                 "gate_settings", "hybrid_variants")
]
# each table's caption, as the report shows it beside the CSV file
# (source_path: relative to this file, also when the workflow is used as a module)
TABLE_CAPTIONS = {
    Path(table).name: Path(workflow.source_path(f"../report/{Path(table).stem}.rst"))
    .read_text()
    .strip()
    for table in REPORT_TABLES
}


# the datasets the ablation runs on (hybridrec.variants.ablation_datasets; none without the block)
ABLATION_DATASETS = ablation_datasets(config)


def ablations(dataset):
    """The `ablations` block, where it runs on ``dataset``; the ablation table needs one."""
    from hybridrec.errors import ConfigError

    if not config.get("ablations"):
        raise ConfigError("ablations: not declared, so no results/tables/ablation/ table can be "
                          "made (see workflow/schemas/config.schema.yaml, `ablations`)")
    if dataset not in ABLATION_DATASETS:
        raise ConfigError(f"results/tables/ablation/{dataset}.csv: the ablation runs on "
                          f"{ABLATION_DATASETS} (ablations.datasets, within run.datasets "
                          f"{DATASETS}), not on {dataset!r}")
    return config["ablations"]


def ablation_rows(wildcards):
    """The ablation table's rows: each variant (its runs, one per seed, and the overrides that
    change its base model on this dataset), then each baseline (its own single run). A run that
    changes nothing under the master seed is read from the base model's run (results_run)."""
    from hybridrec.variants import effective_overrides, overrides, results_run

    block = ablations(wildcards.dataset)
    rows = []
    for variant, entry in block["variants"].items():
        model = entry["model"]
        changed = effective_overrides(model, config["models"][model],
                                      overrides(config, variant), wildcards.dataset)
        runs = [run for run in VARIANT_RUNS.values() if run.variant == variant]
        rows.append({"name": variant, "model": model, "overrides": changed,
                     "seeds": [run.seed for run in runs],
                     "runs": [results_run(config, run, wildcards.dataset) for run in runs]})
    rows += [{"name": model, "model": model, "overrides": {}, "seeds": [config["seed"]],
              "runs": [model]} for model in block["baselines"]]
    return rows


def ablation_metrics(wildcards):
    """The metrics files of every run the ablation table lists."""
    return [f"results/metrics/{wildcards.dataset}/{run}.json"
            for row in ablation_rows(wildcards) for run in row["runs"]]


def bundle_ablation(wildcards):
    """The ablation table a dataset's bundle publishes (none where the ablation does not run)."""
    return ([f"results/tables/ablation/{wildcards.dataset}.csv"]
            if wildcards.dataset in ABLATION_DATASETS else [])


def bundle_ablation_runs(wildcards):
    """The ablation's runs of their own on the bundle's dataset (a run read from its base
    model's is published as that model)."""
    return [run.name for run in trained_runs(config, wildcards.dataset)]


def bundle_ablation_files(pattern):
    """One file per ablation run of the bundle (``pattern`` names it by dataset and run)."""
    return lambda w: [pattern.format(dataset=w.dataset, run=run)
                      for run in bundle_ablation_runs(w)]


def bundle_target_checked(wildcards):
    """No input: refuses (before any job) to write docs/results/{dataset} for a dataset the run
    does not compute, or over a committed bundle made with other settings."""
    from hybridrec.jobs.bundle import check_bundle_target

    check_bundle_target(wildcards.dataset, config, f"docs/results/{wildcards.dataset}")
    return []


def bundle_figures(wildcards):
    """The figures a dataset's results bundle publishes: learning curves and the hybrid's."""
    return [
        *expand("results/figures/learning_curve_{dataset}_{model}.png",
                dataset=wildcards.dataset, model=models_of(wildcards.dataset)),
        *expand("results/figures/{figure}_{dataset}_{protocol}.png", dataset=wildcards.dataset,
                figure=["fig4_shap", "fig6_alpha", "search_landscape"],
                protocol=HYBRID_PROTOCOLS),
    ]


def all_targets():
    return [
        *expand("results/tables/ablation/{dataset}.csv", dataset=ABLATION_DATASETS),
        "results/report/tables.html",
        "results/report/config.html",
        "results/tables/table4.csv",
        "results/tables/table5.csv",
        "results/tables/table1.csv",
        "results/tables/table2.csv",
        "results/tables/table3.csv",
        *[f"results/figures/learning_curve_{dataset}_{model}.png"
          for dataset in DATASETS for model in models_of(dataset)],
    ]
