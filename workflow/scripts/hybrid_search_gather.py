from hybridrec.jobs.gate_search import run_gather
from hybridrec.provenance import start_job

start_job(snakemake)
w, o = snakemake.wildcards, snakemake.output
run_gather(snakemake.input.tables, snakemake.input.gates, o.trials, o.best, o.gate, o.study,
           o.figure, study_name=f"gate search {w.dataset} {w.protocol}",
           title=f"Gate search, {w.dataset}, {w.protocol} (held-out validation)")
