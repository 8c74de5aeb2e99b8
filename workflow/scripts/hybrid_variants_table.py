from hybridrec.io import write_csv
from hybridrec.provenance import start_job
from hybridrec.reporting.tables import hybrid_variants_table, load_evaluations

start_job(snakemake)
evaluations = load_evaluations([tuple(run) for run in snakemake.params.runs],
                               snakemake.input.evaluations)
write_csv(hybrid_variants_table(evaluations, snakemake.params.overrides),
          snakemake.output.table)
