from hybridrec.hybrid.stage import write_aligned
from hybridrec.provenance import start_job

start_job(snakemake)
write_aligned(dict(zip(snakemake.params.branches, snakemake.input.predictions, strict=True)),
              snakemake.wildcards.dataset, snakemake.wildcards.split, snakemake.output[0])
