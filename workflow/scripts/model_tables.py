from hybridrec.io import write_text
from hybridrec.logsetup import configure_logging
from hybridrec.reporting.tables import fmlp_table, linrec_table, load_metrics, models_table

configure_logging(snakemake.log[0])
reports = load_metrics(snakemake.input.metrics)
paper_names = snakemake.params.paper_names
write_text(fmlp_table(reports, paper_names).to_csv(index=False), snakemake.output.table1)
write_text(linrec_table(reports, paper_names).to_csv(index=False), snakemake.output.table2)
write_text(models_table(reports, snakemake.params.protocol).to_csv(index=False),
           snakemake.output.table3)
