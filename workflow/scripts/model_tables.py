from hybridrec.io import write_csv
from hybridrec.provenance import start_job
from hybridrec.reporting.tables import fmlp_table, linrec_table, load_metrics, models_table

start_job(snakemake)
reports = load_metrics(snakemake.input.metrics)
paper_names = snakemake.params.paper_names
write_csv(fmlp_table(reports, paper_names), snakemake.output.table1)
write_csv(linrec_table(reports, paper_names), snakemake.output.table2)
write_csv(models_table(reports, snakemake.params.protocol), snakemake.output.table3)
