import pandas as pd

from hybridrec.provenance import start_job
from hybridrec.reporting.figures import plot_learning_curve

start_job(snakemake)
history = pd.read_parquet(snakemake.input[0])
title = f"{snakemake.wildcards.model} on {snakemake.wildcards.dataset}"
plot_learning_curve(history, title, snakemake.params.protocol, snakemake.output[0])
