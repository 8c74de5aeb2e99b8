from hybridrec.hybrid.stage import winners_table
from hybridrec.io import write_text
from hybridrec.logsetup import configure_logging
from hybridrec.reporting.tables import hybrid_extended_table, hybrid_table, load_evaluations

configure_logging(snakemake.log[0])
p = snakemake.params
evaluations = load_evaluations(p.datasets, snakemake.input.evaluations)
write_text(hybrid_table(evaluations, p.protocol, p.paper_names).to_csv(index=False),
           snakemake.output.table5)
write_text(hybrid_extended_table(evaluations, p.protocol).to_csv(index=False),
           snakemake.output.extended)
write_text(winners_table(p.datasets, snakemake.input.winners).to_csv(index=False),
           snakemake.output.table6)
