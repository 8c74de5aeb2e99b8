from hybridrec.jobs.features import run_features
from hybridrec.provenance import start_job

start_job(snakemake)
w = snakemake.wildcards
run_features(snakemake.input.aligned, snakemake.params.branches, snakemake.input.split,
             snakemake.input.user_ids, w.dataset, w.protocol, w.split, snakemake.output[0])
