from hybridrec.hybrid.search import SELECTIONS
from hybridrec.jobs.gate_search import run_search_shard
from hybridrec.provenance import start_job

start_job(snakemake)
run_search_shard(aligned_path=snakemake.input.aligned, features_path=snakemake.input.features,
                 shap_path=snakemake.input.shap or None, branches=snakemake.params.branches,
                 protocol=snakemake.wildcards.protocol, trials=snakemake.params.trials,
                 shard=int(snakemake.wildcards.shard), shards=snakemake.params.shards,
                 seed=snakemake.params.seed, **snakemake.params.search,
                 table_path=snakemake.output.table,
                 gate_paths=dict(zip(SELECTIONS, snakemake.output.gates, strict=True)))
