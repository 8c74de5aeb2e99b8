from pathlib import Path

from hybridrec.data.sources import load_raw, preprocess_config
from hybridrec.data.store import write_dataset
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
dataset = snakemake.params.dataset
raw = load_raw(dataset, snakemake.input.raw or None)
write_dataset(raw, preprocess_config(dataset), Path(snakemake.output[0]).parent,
              dataset=snakemake.wildcards.dataset)
