from hybridrec.io import write_text
from hybridrec.provenance import start_job
from hybridrec.reporting.html import config_page, tables_page

start_job(snakemake)
write_text(tables_page(snakemake.input.tables, snakemake.params.captions),
           snakemake.output.tables)
write_text(config_page(snakemake.params.config, snakemake.params.configfiles),
           snakemake.output.config)
