from hybridrec.jobs.features import run_features
from hybridrec.provenance import start_job

start_job(snakemake)
run_features(aligned_path=snakemake.input.aligned, branches=snakemake.params.branches,
             split_path=snakemake.input.split, user_ids_path=snakemake.input.user_ids,
             dataset=snakemake.wildcards.dataset, protocol=snakemake.wildcards.protocol,
             split=snakemake.wildcards.split, out=snakemake.output[0])
