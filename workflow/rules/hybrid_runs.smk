# The hybrid stage's input functions and constants (hybrid.smk holds its rules): the
# configured run and each hybrid.variants entry, their folders and their settings.
from hybridrec.hybrid.search import MLP, SELECTIONS

HYBRID_VARIANTS = config["hybrid"]["variants"]
# the variants that fuse other branches (their own aligned lists, features and SHAP summary)
VARIANTS_WITH_BRANCHES = [name for name, entry in HYBRID_VARIANTS.items() if "branches" in entry]
SELECTION_RULES = list(SELECTIONS)


wildcard_constraints:
    variant="|".join(map(re.escape, HYBRID_VARIANTS)) or "(?!)",


def hybrid_settings(wildcards):
    """The hybrid keys of one run: the config's, with its variant's overrides."""
    variant = wildcards.get("variant")
    return {**config["hybrid"], **(HYBRID_VARIANTS[variant] if variant else {})}


def run_branches(wildcards):
    """The branches one run fuses: hybrid.branches, or its variant's own."""
    return hybrid_settings(wildcards)["branches"]


def own_lists(wildcards):
    """Whether a variant fuses other branches than the configured run (its own lists)."""
    variant = wildcards.get("variant")
    return bool(variant) and "branches" in HYBRID_VARIANTS[variant]


def lists_folder(wildcards):
    """Where one run's aligned lists, features and SHAP summary are: its variant's folder for
    a variant with its own branches, else the protocol's."""
    if own_lists(wildcards):
        return run_folder(wildcards)
    return f"results/hybrid/{wildcards.dataset}/{wildcards.protocol}"


def run_folder(wildcards):
    """Where one run's search and fusion write: the protocol's folder, or its variant's."""
    folder = f"results/hybrid/{wildcards.dataset}/{wildcards.protocol}"
    variant = wildcards.get("variant")
    return f"{folder}/variants/{variant}" if variant else folder


def run_name(wildcards):
    """``<dataset> <protocol>``, with `` variant <name>`` for a variant (titles, study name)."""
    variant = wildcards.get("variant")
    return f"{wildcards.dataset} {wildcards.protocol}" + (f" variant {variant}" if variant else "")


def search_settings(wildcards):
    """The config values one run's search shards use, and only those (a change of another
    key, such as shap_top_k while hybrid.features is not `shap`, reruns nothing)."""
    hybrid = hybrid_settings(wildcards)
    search = {key: hybrid[key] for key in ("features", "tie_label", "rebalance", "gate",
                                           "held_out")}
    if hybrid["features"] == "shap":
        search["shap_top_k"] = hybrid["shap_top_k"]
    if hybrid["gate"] == MLP:  # how the MLP trains; the tree gates have no epochs
        search["loss"] = hybrid["loss"]
        search["batch_size"] = config["gate_search"]["batch_size"]
        search["keep_epoch"] = config["gate_search"]["keep_epoch"]
        if hybrid["loss"] == "focal":
            search["focal_gamma"] = hybrid["focal_gamma"]
    return search


def shap_summary(wildcards):
    """The SHAP summary, for a search whose features are SHAP's top k (none otherwise)."""
    if hybrid_settings(wildcards)["features"] != "shap":
        return []
    return f"{lists_folder(wildcards)}/shap.json"


def search_shard_files(suffix):
    """Every shard's file ``shard<i><suffix>`` of one run's search."""
    return lambda w: [
        f"{run_folder(w)}/search/shard{shard}{suffix}"
        for shard in range(config["gate_search"]["shards"])
    ]


def search_shard_gates(wildcards):
    """Every shard's best gate under every selection rule (the gather picks among them)."""
    return [path for rule in SELECTION_RULES
            for path in search_shard_files(f".gate_{rule}.pt")(wildcards)]


def other_rule_gates(wildcards):
    """The gates the selection rules other than hybrid.selection picked (fused beside it)."""
    chosen = hybrid_settings(wildcards)["selection"]
    return [f"{run_folder(wildcards)}/search/gate_{rule}.pt" for rule in SELECTION_RULES
            if rule != chosen]


def variant_runs_of_hybrid():
    """(dataset, protocol, variant) of the default runs (variant `default`) and every
    variant's on its datasets (those of run.datasets it names) under its protocols, in report
    order."""
    return [(d, p, v) for d, p in HYBRID_RUNS for v in ["default", *HYBRID_VARIANTS]
            if v == "default" or (p in HYBRID_VARIANTS[v].get("protocols", HYBRID_PROTOCOLS)
                                  and d in HYBRID_VARIANTS[v].get("datasets", DATASETS))]


def variant_evaluations(wildcards):
    return [
        f"results/hybrid/{d}/{p}/evaluation.json" if v == "default"
        else f"results/hybrid/{d}/{p}/variants/{v}/evaluation.json"
        for d, p, v in variant_runs_of_hybrid()
    ]
