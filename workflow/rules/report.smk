# Pages that carry the result tables and the run's configuration into `snakemake --report`.

rule report_pages:
    input:
        tables=REPORT_TABLES,
    output:
        tables=report(
            "results/report/tables.html", caption="../report/tables_page.rst", category="Tables"
        ),
        config=report(
            "results/report/config.html",
            caption="../report/config_page.rst",
            category="Configuration",
        ),
    params:
        captions=TABLE_CAPTIONS,
        config=config,
        configfiles=[os.path.relpath(f) for f in workflow.configfiles],
        code=script_code("report_pages"),
        upstream=upstream("report_pages"),
    log:
        "logs/tables/report_pages.log",
    benchmark:
        "benchmarks/out/tables/report_pages.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/report_pages.py"


rule results_bundle:
    input:
        # refuses an undeclared or unrun dataset, and a committed bundle made with other settings
        checked=bundle_target_checked,
        tables=REPORT_TABLES,
        figures=bundle_figures,
        metrics=lambda w: expand("results/metrics/{dataset}/{model}.json",
                                 dataset=w.dataset, model=models_of(w.dataset)),
        models=lambda w: expand("results/models/{dataset}/{model}/model.pt",
                                dataset=w.dataset, model=models_of(w.dataset)),
        histories=lambda w: expand("results/models/{dataset}/{model}/history.parquet",
                                   dataset=w.dataset, model=models_of(w.dataset)),
        ablation=bundle_ablation,
        ablation_models=bundle_ablation_files("results/models/{dataset}/{run}/model.pt"),
        ablation_histories=bundle_ablation_files("results/models/{dataset}/{run}/history.parquet"),
        ablation_metrics=bundle_ablation_files("results/metrics/{dataset}/{run}.json"),
    output:
        directory("docs/results/{dataset}"),
    params:
        models=lambda w: models_of(w.dataset),
        ablation_runs=bundle_ablation_runs,
        config=config,
        code=script_code("results_bundle"),
        upstream=upstream("results_bundle"),
    log:
        "logs/results_bundle/{dataset}.log",
    benchmark:
        "benchmarks/out/results_bundle/{dataset}.tsv"
    wildcard_constraints:
        dataset="[^/]+",  # any name: an undeclared one is refused by name, not "no rule"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/results_bundle.py"
