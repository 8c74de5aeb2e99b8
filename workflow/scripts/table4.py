from hybridrec.io import write_text
from hybridrec.logsetup import configure_logging
from hybridrec.reporting.tables import dataset_stats_table

configure_logging(snakemake.log[0])
table = dataset_stats_table(snakemake.params.datasets, snakemake.input)
write_text(table.to_csv(index=False), snakemake.output[0])
