from hybridrec.jobs.bundle import PublishedWeights, import_weights
from hybridrec.provenance import start_job

start_job(snakemake)
import_weights(PublishedWeights(**snakemake.params.source), snakemake.output.model,
               snakemake.output.history)
