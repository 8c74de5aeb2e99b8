from hybridrec.jobs.shap import run_shap
from hybridrec.provenance import start_job

start_job(snakemake)
w = snakemake.wildcards
run_shap(snakemake.input[0], snakemake.params.branches, snakemake.params.top_k,
         snakemake.params.seed, snakemake.output.summary, snakemake.output.figure,
         title=f"Gate SHAP values, {w.dataset}, {w.protocol} (validation)",
         balanced=snakemake.params.balanced)
