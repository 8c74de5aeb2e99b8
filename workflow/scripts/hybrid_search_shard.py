from hybridrec.hybrid.stage import write_search_shard
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
write_search_shard(snakemake.input.aligned, snakemake.input.features, snakemake.input.shap,
                   snakemake.params.branches, snakemake.params.trials,
                   int(snakemake.wildcards.shard), snakemake.params.shards,
                   snakemake.params.held_out, snakemake.params.seed, snakemake.output[0])
