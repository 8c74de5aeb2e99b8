from hybridrec.hybrid.stage import write_search_shard
from hybridrec.provenance import start_job

start_job(snakemake)
write_search_shard(snakemake.input.aligned, snakemake.input.features, snakemake.input.shap,
                   snakemake.params.branches, snakemake.params.trials,
                   int(snakemake.wildcards.shard), snakemake.params.shards,
                   snakemake.params.held_out, snakemake.params.seed, snakemake.output[0])
