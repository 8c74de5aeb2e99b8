from pathlib import Path

from hybridrec.data.download import fetch
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
fetch(snakemake.params.url, Path(snakemake.output[0]), snakemake.params.checksum)
