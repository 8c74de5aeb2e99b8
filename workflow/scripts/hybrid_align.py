from hybridrec.jobs.align import run_align
from hybridrec.provenance import start_job

start_job(snakemake)
run_align(prediction_paths=dict(zip(snakemake.params.branches, snakemake.input.predictions,
                                    strict=True)),
          protocols=snakemake.params.protocols, dataset=snakemake.wildcards.dataset,
          split=snakemake.wildcards.split, out=snakemake.output[0])
