from hybridrec.io import write_text
from hybridrec.logsetup import configure_logging
from hybridrec.reporting.html import config_page, tables_page

configure_logging(snakemake.log[0])
write_text(tables_page(snakemake.input.tables, snakemake.params.captions),
           snakemake.output.tables)
write_text(config_page(snakemake.params.config, snakemake.params.configfiles),
           snakemake.output.config)
