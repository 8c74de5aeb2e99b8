from pathlib import Path

from hybridrec.data.download import extract_zip_member, verify_checksum
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
archive = Path(snakemake.input[0])
if snakemake.params.checksum:
    verify_checksum(archive, snakemake.params.checksum)
extract_zip_member(archive, snakemake.params.member, Path(snakemake.output[0]))
