from hybridrec.hybrid.stage import write_shap
from hybridrec.provenance import start_job

start_job(snakemake)
write_shap(snakemake.input[0], snakemake.params.branches, snakemake.params.top_k,
           snakemake.params.seed, snakemake.output.summary, snakemake.output.figure,
           title=f"Gate SHAP values, {snakemake.wildcards.dataset} (validation)")
