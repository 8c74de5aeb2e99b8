from hybridrec.hybrid.jobs.align import run_align
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
run_align(dict(zip(snakemake.params.branches, snakemake.input.predictions, strict=True)),
          snakemake.params.protocols, snakemake.wildcards.dataset, snakemake.wildcards.split,
          snakemake.output[0])
