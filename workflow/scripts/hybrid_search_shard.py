from hybridrec.jobs.gate_search import run_search_shard
from hybridrec.provenance import start_job

start_job(snakemake)
i, p = snakemake.input, snakemake.params
run_search_shard(i.aligned, i.features, i.shap, p.branches, snakemake.wildcards.protocol,
                 p.trials, int(snakemake.wildcards.shard), p.shards, p.held_out, p.seed,
                 snakemake.output.table, snakemake.output.gate)
