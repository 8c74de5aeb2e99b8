from hybridrec.hybrid.jobs.gate_search import run_gather
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
w, o = snakemake.wildcards, snakemake.output
run_gather(snakemake.input.tables, snakemake.input.gates, o.trials, o.best, o.gate, o.study,
           o.figure, study_name=f"gate search {w.dataset} {w.protocol}",
           title=f"Gate search, {w.dataset}, {w.protocol} (held-out validation)")
