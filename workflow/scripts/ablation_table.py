from pathlib import Path

from hybridrec.io import write_csv, write_text
from hybridrec.provenance import start_job
from hybridrec.reporting.ablation import ablation_markdown, ablation_table
from hybridrec.reporting.tables import load_metrics

start_job(snakemake)
paths = list(snakemake.input.metrics)
reports = dict(zip((Path(p).stem for p in paths), load_metrics(paths), strict=True))
table = ablation_table(snakemake.wildcards.dataset, snakemake.params.rows, reports,
                       snakemake.params.protocols)
write_csv(table, snakemake.output.table)
write_text(ablation_markdown(table), snakemake.output.markdown)
