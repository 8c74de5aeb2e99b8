from hybridrec.hybrid.stage import write_gathered
from hybridrec.provenance import start_job

start_job(snakemake)
write_gathered(snakemake.input, snakemake.output.trials, snakemake.output.best,
               snakemake.output.figure,
               title=f"Gate search, {snakemake.wildcards.dataset} (held-out validation)")
