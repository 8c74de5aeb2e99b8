from hybridrec.hybrid.stage import winners_table
from hybridrec.io import write_csv
from hybridrec.provenance import start_job
from hybridrec.reporting.tables import hybrid_extended_table, hybrid_table, load_evaluations

start_job(snakemake)
p = snakemake.params
evaluations = load_evaluations(p.datasets, snakemake.input.evaluations)
write_csv(hybrid_table(evaluations, p.protocol, p.paper_names), snakemake.output.table5)
write_csv(hybrid_extended_table(evaluations, p.protocol), snakemake.output.extended)
write_csv(winners_table(p.datasets, snakemake.input.winners), snakemake.output.table6)
