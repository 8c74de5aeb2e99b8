import pandas as pd

from hybridrec.logsetup import configure_logging
from hybridrec.reporting.figures import plot_learning_curve

configure_logging(snakemake.log[0])
history = pd.read_parquet(snakemake.input[0])
title = f"{snakemake.wildcards.model} on {snakemake.wildcards.dataset}"
plot_learning_curve(history, title, snakemake.params.protocol, snakemake.output[0])
