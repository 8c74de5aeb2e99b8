from hybridrec.hybrid.stage import write_shap
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
write_shap(snakemake.input[0], snakemake.params.branches, snakemake.params.top_k,
           snakemake.params.seed, snakemake.output.summary, snakemake.output.figure,
           title=f"Gate SHAP values, {snakemake.wildcards.dataset} (validation)")
