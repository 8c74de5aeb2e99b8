from hybridrec.provenance import start_job
from hybridrec.reporting.bundle import write_bundle

start_job(snakemake)
i, models = snakemake.input, snakemake.params.models
write_bundle(snakemake.output[0], snakemake.wildcards.dataset, tables=i.tables,
             figures=i.figures, metrics=dict(zip(models, i.metrics, strict=True)),
             models=dict(zip(models, zip(i.models, i.histories, strict=True), strict=True)),
             config=snakemake.params.config)
