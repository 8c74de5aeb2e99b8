from hybridrec.io import write_text
from hybridrec.logsetup import configure_logging
from hybridrec.reporting.tables import (
    hybrid_extended_table,
    hybrid_table,
    load_evaluations,
    winners_table,
)

configure_logging(snakemake.log[0])
p = snakemake.params
evaluations = load_evaluations([tuple(run) for run in p.runs], snakemake.input.evaluations)
write_text(hybrid_table(evaluations, p.paper_names).to_csv(index=False), snakemake.output.table5)
write_text(hybrid_extended_table(evaluations).to_csv(index=False), snakemake.output.extended)
write_text(winners_table(evaluations, snakemake.input.winners, p.paper_names).to_csv(index=False),
           snakemake.output.table6)
