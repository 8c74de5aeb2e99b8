from hybridrec.io import write_csv
from hybridrec.provenance import start_job
from hybridrec.reporting.tables import (
    hybrid_extended_table,
    hybrid_table,
    load_evaluations,
    winners_table,
)

start_job(snakemake)
p = snakemake.params
evaluations = load_evaluations([tuple(run) for run in p.runs], snakemake.input.evaluations)
write_csv(hybrid_table(evaluations, p.paper_names), snakemake.output.table5)
write_csv(hybrid_extended_table(evaluations), snakemake.output.extended)
write_csv(winners_table(evaluations, snakemake.input.winners, p.paper_names),
          snakemake.output.table6)
