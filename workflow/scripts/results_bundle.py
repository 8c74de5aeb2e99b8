from hybridrec.jobs.bundle import write_bundle
from hybridrec.provenance import start_job

start_job(snakemake)
models = snakemake.params.models
write_bundle(
    snakemake.output[0],
    snakemake.wildcards.dataset,
    tables=snakemake.input.tables,
    figures=snakemake.input.figures,
    metrics=dict(zip(models, snakemake.input.metrics, strict=True)),
    models=dict(zip(models, zip(snakemake.input.models, snakemake.input.histories, strict=True),
                    strict=True)),
    config=snakemake.params.config,
    ablation=next(iter(snakemake.input.ablation), None),
    ablation_runs=dict(zip(snakemake.params.ablation_runs,
                           zip(snakemake.input.ablation_models, snakemake.input.ablation_histories,
                               snakemake.input.ablation_metrics, strict=True), strict=True)),
)
