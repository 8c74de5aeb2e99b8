from hybridrec.io import write_csv
from hybridrec.provenance import start_job
from hybridrec.reporting.tables import dataset_stats_table

start_job(snakemake)
table = dataset_stats_table(snakemake.params.datasets, snakemake.input)
write_csv(table, snakemake.output[0])
