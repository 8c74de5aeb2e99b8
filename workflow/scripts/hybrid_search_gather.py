from hybridrec.hybrid.stage import write_gathered
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
write_gathered(snakemake.input, snakemake.output.trials, snakemake.output.best,
               snakemake.output.figure,
               title=f"Gate search, {snakemake.wildcards.dataset} (held-out validation)")
