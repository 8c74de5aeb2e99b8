from pathlib import Path

from hybridrec.data.sources import load_raw, preprocess_config
from hybridrec.data.store import write_dataset
from hybridrec.provenance import start_job

start_job(snakemake)
dataset = snakemake.params.dataset
raw = load_raw(dataset, snakemake.input.raw or None)
write_dataset(raw, preprocess_config(dataset), Path(snakemake.output[0]).parent,
              dataset=snakemake.wildcards.dataset)
