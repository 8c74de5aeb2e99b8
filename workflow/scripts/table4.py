from hybridrec.logsetup import configure_logging
from hybridrec.reporting.tables import dataset_stats_table
from hybridrec.io import write_text

configure_logging(snakemake.log[0])
table = dataset_stats_table(snakemake.params.datasets, snakemake.input)
write_text(table.to_csv(index=False), snakemake.output[0])
