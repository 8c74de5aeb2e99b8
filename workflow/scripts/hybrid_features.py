from hybridrec.hybrid.jobs.features import run_features
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
w = snakemake.wildcards
run_features(snakemake.input.aligned, snakemake.params.branches, snakemake.input.split,
             snakemake.input.user_ids, w.dataset, w.protocol, w.split, snakemake.output[0])
