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
        version=PACKAGE_VERSION,
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
