# The gated hybrid: align -> features -> SHAP -> gate search (scatter/gather) -> fusion -> tables.


rule align:
    input:
        predictions=branch_predictions,
        # the id tables our own exports name in their metadata
        ids=lambda w: expand("results/data/{dataset}/{ids}.parquet", dataset=w.dataset,
                             ids=["user_ids", "item_ids"]),
    output:
        "results/hybrid/{dataset}/aligned/{split}.parquet",
    params:
        branches=BRANCHES,
        code=script_code("hybrid_align"),
    log:
        "logs/hybrid/{dataset}/align_{split}.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/align_{split}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/hybrid_align.py"


rule features:
    input:
        aligned="results/hybrid/{dataset}/aligned/{split}.parquet",
        split="results/data/{dataset}/split/{split}.parquet",
        user_ids="results/data/{dataset}/user_ids.parquet",
    output:
        "results/hybrid/{dataset}/features/{split}.parquet",
    params:
        branches=BRANCHES,
        code=script_code("hybrid_features"),
    log:
        "logs/hybrid/{dataset}/features_{split}.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/features_{split}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/hybrid_features.py"


rule shap:
    input:
        "results/hybrid/{dataset}/features/valid.parquet",
    output:
        summary="results/hybrid/{dataset}/shap.json",
        figure=report(
            "results/figures/fig4_shap_{dataset}.png",
            caption="../report/fig4_shap.rst",
            category="Hybrid",
        ),
    params:
        branches=BRANCHES,
        top_k=config["hybrid"]["shap_top_k"],
        seed=config["seed"],
        code=script_code("hybrid_shap"),
    log:
        "logs/hybrid/{dataset}/shap.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/shap.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/hybrid_shap.py"


rule gate_search_shard:
    input:
        aligned="results/hybrid/{dataset}/aligned/valid.parquet",
        features="results/hybrid/{dataset}/features/valid.parquet",
        shap="results/hybrid/{dataset}/shap.json",
    output:
        "results/hybrid/{dataset}/search/shard{shard}.parquet",
    params:
        branches=BRANCHES,
        trials=config["gate_search"]["trials"],
        shards=config["gate_search"]["shards"],
        held_out=config["hybrid"]["held_out"],
        seed=config["seed"],
        code=script_code("hybrid_search_shard"),
    log:
        "logs/hybrid/{dataset}/search_shard{shard}.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/search_shard{shard}.tsv"
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


rule gate_search_gather:
    input:
        expand(
            "results/hybrid/{{dataset}}/search/shard{shard}.parquet",
            shard=range(config["gate_search"]["shards"]),
        ),
    output:
        trials="results/hybrid/{dataset}/search/trials.parquet",
        best="results/hybrid/{dataset}/search/best.json",
        figure=report(
            "results/figures/search_landscape_{dataset}.png",
            caption="../report/search_landscape.rst",
            category="Hybrid",
        ),
    params:
        code=script_code("hybrid_search_gather"),
    log:
        "logs/hybrid/{dataset}/search_gather.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/search_gather.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/hybrid_search_gather.py"


rule fusion:
    input:
        aligned_valid="results/hybrid/{dataset}/aligned/valid.parquet",
        aligned_test="results/hybrid/{dataset}/aligned/test.parquet",
        features_valid="results/hybrid/{dataset}/features/valid.parquet",
        features_test="results/hybrid/{dataset}/features/test.parquet",
        best="results/hybrid/{dataset}/search/best.json",
        shap="results/hybrid/{dataset}/shap.json",
    output:
        summary="results/hybrid/{dataset}/evaluation.json",
        alpha="results/hybrid/{dataset}/alpha_test.parquet",
        fused="results/hybrid/{dataset}/fused_test.parquet",
        figure=report(
            "results/figures/fig6_alpha_{dataset}.png",
            caption="../report/fig6_alpha.rst",
            category="Hybrid",
        ),
    params:
        branches=BRANCHES,
        held_out=config["hybrid"]["held_out"],
        fusion_seeds=config["hybrid"]["fusion_seeds"],
        bootstrap_resamples=config["hybrid"]["bootstrap_resamples"],
        seed=config["seed"],
        code=script_code("hybrid_fusion"),
    log:
        "logs/hybrid/{dataset}/fusion.log",
    benchmark:
        "benchmarks/out/hybrid/{dataset}/fusion.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/hybrid_fusion.py"


rule hybrid_tables:
    input:
        evaluations=expand("results/hybrid/{dataset}/evaluation.json", dataset=DATASETS),
        winners=expand("results/hybrid/{dataset}/features/test.parquet", dataset=DATASETS),
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
    params:
        datasets=DATASETS,
        protocol=config["evaluation"]["protocol"],
        paper_names={name: ds.get("paper") for name, ds in config["datasets"].items()},
        code=script_code("hybrid_tables"),
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

