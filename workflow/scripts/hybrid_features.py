from hybridrec.hybrid.stage import write_features
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
write_features(snakemake.input.aligned, snakemake.params.branches, snakemake.input.split,
               snakemake.input.user_ids, snakemake.wildcards.dataset, snakemake.wildcards.split,
               snakemake.output[0])
