from pathlib import Path

from hybridrec.data.download import fetch
from hybridrec.provenance import start_job

start_job(snakemake)
fetch(snakemake.params.url, Path(snakemake.output[0]), snakemake.params.checksum)
