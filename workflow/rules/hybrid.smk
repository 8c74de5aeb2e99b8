# The gated hybrid, once per dataset and protocol (hybrid.protocols):
# align -> features -> SHAP -> gate search (scatter/gather) -> fusion -> tables.
# Each hybrid.variants entry reruns the search and fusion with its overrides under
# results/hybrid/{dataset}/{protocol}/variants/{variant}/, reading the same aligned lists,
# features and SHAP summary; results/tables/hybrid_variants.csv puts them side by side.


include: "hybrid_runs.smk"


rule align:
    input:
        predictions=branch_predictions,
        # the id tables our own exports name in their metadata
        ids=lambda w: expand("results/data/{dataset}/{ids}.parquet", dataset=w.dataset,
                             ids=["user_ids", "item_ids"]),
    output:
        "results/hybrid/{dataset}/{protocol}/aligned/{split}.parquet",
    params:
        branches=run_branches,
        protocols=lambda w: branch_protocols(w.protocol, run_branches(w)),
        code=script_code("hybrid_align"),
        upstream=upstream("align"),
    log:
        "logs/hybrid/{dataset}/{protocol}/align_{split}.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/align_{split}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/hybrid_align.py"


# a variant that fuses other branches has its own aligned lists, features and SHAP summary
use rule align as variant_align with:
    output:
        "results/hybrid/{dataset}/{protocol}/variants/{variant}/aligned/{split}.parquet",
    log:
        "logs/hybrid/{dataset}/{protocol}/variants/{variant}/align_{split}.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/variants/{variant}/align_{split}.tsv"
    wildcard_constraints:
        variant=one_of(VARIANTS_WITH_BRANCHES),


rule features:
    input:
        aligned=lambda w: f"{lists_folder(w)}/aligned/{w.split}.parquet",
        split="results/data/{dataset}/split/{split}.parquet",
        user_ids="results/data/{dataset}/user_ids.parquet",
    output:
        "results/hybrid/{dataset}/{protocol}/features/{split}.parquet",
    params:
        branches=run_branches,
        code=script_code("hybrid_features"),
        upstream=upstream("features"),
    log:
        "logs/hybrid/{dataset}/{protocol}/features_{split}.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/features_{split}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/hybrid_features.py"


use rule features as variant_features with:
    output:
        "results/hybrid/{dataset}/{protocol}/variants/{variant}/features/{split}.parquet",
    log:
        "logs/hybrid/{dataset}/{protocol}/variants/{variant}/features_{split}.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/variants/{variant}/features_{split}.tsv"
    wildcard_constraints:
        variant=one_of(VARIANTS_WITH_BRANCHES),


rule shap:
    input:
        lambda w: f"{lists_folder(w)}/features/valid.parquet",
    output:
        summary="results/hybrid/{dataset}/{protocol}/shap.json",
        figure=report(
            "results/figures/fig4_shap_{dataset}_{protocol}.png",
            caption="../report/fig4_shap.rst",
            category="Hybrid",
        ),
    params:
        branches=run_branches,
        balanced=config["hybrid"]["shap_balanced"],
        seed=config["seed"],
        code=script_code("hybrid_shap"),
        upstream=upstream("shap"),
    log:
        "logs/hybrid/{dataset}/{protocol}/shap.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/shap.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/hybrid_shap.py"


use rule shap as variant_shap with:
    output:
        summary="results/hybrid/{dataset}/{protocol}/variants/{variant}/shap.json",
        figure="results/hybrid/{dataset}/{protocol}/variants/{variant}/fig4_shap.png",
    log:
        "logs/hybrid/{dataset}/{protocol}/variants/{variant}/shap.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/variants/{variant}/shap.tsv"
    wildcard_constraints:
        variant=one_of(VARIANTS_WITH_BRANCHES),


rule gate_search_shard:
    input:
        aligned=lambda w: f"{lists_folder(w)}/aligned/valid.parquet",
        features=lambda w: f"{lists_folder(w)}/features/valid.parquet",
        shap=shap_summary,
    output:
        table="results/hybrid/{dataset}/{protocol}/search/shard{shard}.parquet",
        # the shard's best gate under each selection rule (SELECTION_RULES order)
        gates=expand(
            "results/hybrid/{{dataset}}/{{protocol}}/search/shard{{shard}}.gate_{selection}.pt",
            selection=SELECTION_RULES,
        ),
    params:
        branches=run_branches,
        trials=config["gate_search"]["trials"],
        shards=config["gate_search"]["shards"],
        seed=config["seed"],
        search=search_settings,
        code=script_code("hybrid_search_shard"),
        upstream=upstream("gate_search_shard"),
    log:
        "logs/hybrid/{dataset}/{protocol}/search_shard{shard}.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/search_shard{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+",
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/hybrid_search_shard.py"


use rule gate_search_shard as variant_gate_search_shard with:
    output:
        table="results/hybrid/{dataset}/{protocol}/variants/{variant}/search/shard{shard}.parquet",
        gates=expand(
            "results/hybrid/{{dataset}}/{{protocol}}/variants/{{variant}}/search/"
            "shard{{shard}}.gate_{selection}.pt",
            selection=SELECTION_RULES,
        ),
    log:
        "logs/hybrid/{dataset}/{protocol}/variants/{variant}/search_shard{shard}.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/variants/{variant}/search_shard{shard}.tsv"


rule gate_search_gather:
    input:
        tables=search_shard_files(".parquet"),
        gates=search_shard_gates,
    output:
        trials="results/hybrid/{dataset}/{protocol}/search/trials.parquet",
        # the best trial under each selection rule, and which rule hybrid.selection names
        best="results/hybrid/{dataset}/{protocol}/search/best.json",
        # each rule's winning gate exactly as its shard scored it
        rule_gates=expand(
            "results/hybrid/{{dataset}}/{{protocol}}/search/gate_{selection}.pt",
            selection=SELECTION_RULES,
        ),
        # the gate hybrid.selection picks (a copy of its rule's); fusion loads it
        gate="results/hybrid/{dataset}/{protocol}/search/gate.pt",
        # the search as an Optuna study: optuna-dashboard sqlite:///<this file>
        study="results/hybrid/{dataset}/{protocol}/search/study.db",
        figure=report(
            "results/figures/search_landscape_{dataset}_{protocol}.png",
            caption="../report/search_landscape.rst",
            category="Hybrid",
        ),
    params:
        selection=lambda w: hybrid_settings(w)["selection"],
        run=run_name,
        code=script_code("hybrid_search_gather"),
        upstream=upstream("gate_search_gather"),
    log:
        "logs/hybrid/{dataset}/{protocol}/search_gather.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/search_gather.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/hybrid_search_gather.py"


use rule gate_search_gather as variant_gate_search_gather with:
    output:
        trials="results/hybrid/{dataset}/{protocol}/variants/{variant}/search/trials.parquet",
        best="results/hybrid/{dataset}/{protocol}/variants/{variant}/search/best.json",
        rule_gates=expand(
            "results/hybrid/{{dataset}}/{{protocol}}/variants/{{variant}}/search/"
            "gate_{selection}.pt",
            selection=SELECTION_RULES,
        ),
        gate="results/hybrid/{dataset}/{protocol}/variants/{variant}/search/gate.pt",
        study="results/hybrid/{dataset}/{protocol}/variants/{variant}/search/study.db",
        figure="results/hybrid/{dataset}/{protocol}/variants/{variant}/search/landscape.png",
    log:
        "logs/hybrid/{dataset}/{protocol}/variants/{variant}/search_gather.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/variants/{variant}/search_gather.tsv"


rule fusion:
    input:
        aligned_valid=lambda w: f"{lists_folder(w)}/aligned/valid.parquet",
        aligned_test=lambda w: f"{lists_folder(w)}/aligned/test.parquet",
        features_test=lambda w: f"{lists_folder(w)}/features/test.parquet",
        gate=lambda w: f"{run_folder(w)}/search/gate.pt",
        other_gates=other_rule_gates,
    output:
        summary="results/hybrid/{dataset}/{protocol}/evaluation.json",
        alpha="results/hybrid/{dataset}/{protocol}/alpha_test.parquet",
        fused="results/hybrid/{dataset}/{protocol}/fused_test.parquet",
        figure=report(
            "results/figures/fig6_alpha_{dataset}_{protocol}.png",
            caption="../report/fig6_alpha.rst",
            category="Hybrid",
        ),
    params:
        branches=run_branches,
        fusion_seeds=config["hybrid"]["fusion_seeds"],
        bootstrap_resamples=config["hybrid"]["bootstrap_resamples"],
        seed=config["seed"],
        run=run_name,
        code=script_code("hybrid_fusion"),
        upstream=upstream("fusion"),
    log:
        "logs/hybrid/{dataset}/{protocol}/fusion.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/fusion.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/hybrid_fusion.py"


use rule fusion as variant_fusion with:
    output:
        summary="results/hybrid/{dataset}/{protocol}/variants/{variant}/evaluation.json",
        alpha="results/hybrid/{dataset}/{protocol}/variants/{variant}/alpha_test.parquet",
        fused="results/hybrid/{dataset}/{protocol}/variants/{variant}/fused_test.parquet",
        figure="results/hybrid/{dataset}/{protocol}/variants/{variant}/fig6_alpha.png",
    log:
        "logs/hybrid/{dataset}/{protocol}/variants/{variant}/fusion.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/{protocol}/variants/{variant}/fusion.tsv"


rule hybrid_tables:
    input:
        evaluations=hybrid_run_files("results/hybrid/{dataset}/{protocol}/evaluation.json"),
        winners_valid=hybrid_run_files("results/hybrid/{dataset}/{protocol}/features/valid.parquet"),
        winners_test=hybrid_run_files("results/hybrid/{dataset}/{protocol}/features/test.parquet"),
        shap=hybrid_run_files("results/hybrid/{dataset}/{protocol}/shap.json"),
    output:
        table5=report(
            "results/tables/table5.csv", caption="../report/table5.rst", category="Tables"
        ),
        extended=report(
            "results/tables/table5_extended.csv",
            caption="../report/table5_extended.rst",
            category="Tables",
        ),
        table6=report(
            "results/tables/table6.csv", caption="../report/table6.rst", category="Tables"
        ),
        gate_settings=report(
            "results/tables/gate_settings.csv",
            caption="../report/gate_settings.rst",
            category="Tables",
        ),
    params:
        runs=HYBRID_RUNS,
        paper_names=PAPER_NAMES,
        code=script_code("hybrid_tables"),
        upstream=upstream("hybrid_tables"),
    log:
        "logs/tables/hybrid_tables.log",
    benchmark:
        "benchmarks/out/tables/hybrid_tables.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/hybrid_tables.py"


rule hybrid_variants_table:
    input:
        evaluations=variant_evaluations,
    output:
        table=report(
            "results/tables/hybrid_variants.csv",
            caption="../report/hybrid_variants.rst",
            category="Tables",
        ),
    params:
        runs=variant_runs_of_hybrid(),
        overrides=HYBRID_VARIANTS,
        code=script_code("hybrid_variants_table"),
        upstream=upstream("hybrid_variants_table"),
    log:
        "logs/tables/hybrid_variants_table.log",
    benchmark:
        "benchmarks/out/tables/hybrid_variants_table.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/hybrid_variants_table.py"
