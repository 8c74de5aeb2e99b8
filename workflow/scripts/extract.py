from pathlib import Path

from hybridrec.data.download import extract_zip_member, verify_checksum
from hybridrec.provenance import start_job

start_job(snakemake)
archive = Path(snakemake.input[0])
if snakemake.params.checksum:
    verify_checksum(archive, snakemake.params.checksum)
extract_zip_member(archive, snakemake.params.member, Path(snakemake.output[0]))
