from hybridrec.jobs.align import run_align
from hybridrec.provenance import start_job

start_job(snakemake)
run_align(dict(zip(snakemake.params.branches, snakemake.input.predictions, strict=True)),
          snakemake.params.protocols, snakemake.wildcards.dataset, snakemake.wildcards.split,
          snakemake.output[0])
