from hybridrec.data.store import write_candidates
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
write_candidates(snakemake.params.root, snakemake.wildcards.protocol, seed=snakemake.params.seed,
                 dataset=snakemake.wildcards.dataset)
