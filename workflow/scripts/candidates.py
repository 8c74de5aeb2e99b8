from hybridrec.data.candidates import protocol_keys
from hybridrec.data.store import write_candidates
from hybridrec.provenance import start_job

start_job(snakemake)
write_candidates(snakemake.params.root, snakemake.wildcards.protocol, seed=snakemake.params.seed,
                 dataset=snakemake.wildcards.dataset,
                 asked_by=protocol_keys(snakemake.config, snakemake.wildcards.protocol))
