from hybridrec.hybrid.stage import write_aligned
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
write_aligned(dict(zip(snakemake.params.branches, snakemake.input.predictions, strict=True)),
              snakemake.wildcards.dataset, snakemake.wildcards.split, snakemake.output[0])
