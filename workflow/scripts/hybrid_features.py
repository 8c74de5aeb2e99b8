from hybridrec.hybrid.stage import write_features
from hybridrec.provenance import start_job

start_job(snakemake)
write_features(snakemake.input.aligned, snakemake.params.branches, snakemake.input.split,
               snakemake.input.user_ids, snakemake.wildcards.dataset, snakemake.wildcards.split,
               snakemake.output[0])
