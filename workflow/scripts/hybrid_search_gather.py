from hybridrec.hybrid.search import SELECTIONS
from hybridrec.jobs.gate_search import run_gather
from hybridrec.provenance import start_job

start_job(snakemake)
output, run = snakemake.output, snakemake.params.run
run_gather(table_paths=snakemake.input.tables, gate_paths=snakemake.input.gates,
           selection=snakemake.params.selection, trials_path=output.trials,
           best_path=output.best, gate_path=output.gate,
           rule_gate_paths=dict(zip(SELECTIONS, output.rule_gates, strict=True)),
           study_path=output.study, figure_path=output.figure, study_name=f"gate search {run}",
           title=f"Gate search, {run} (held-out validation)")
