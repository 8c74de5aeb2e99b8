from hybridrec.jobs.shap import run_shap
from hybridrec.provenance import start_job

start_job(snakemake)
wildcards = snakemake.wildcards
run_shap(features_path=snakemake.input[0], branches=snakemake.params.branches,
         seed=snakemake.params.seed, balanced=snakemake.params.balanced,
         summary_path=snakemake.output.summary, figure_path=snakemake.output.figure,
         title=f"Gate SHAP values, {wildcards.dataset}, {wildcards.protocol} (validation)")
