from hybridrec.hybrid.stage import write_evaluation
from hybridrec.provenance import start_job

start_job(snakemake)
i, p = snakemake.input, snakemake.params
write_evaluation(snakemake.output.summary, snakemake.output.alpha, snakemake.output.fused,
                 snakemake.output.figure, title=f"Gate alpha, {snakemake.wildcards.dataset} (test)",
                 aligned_valid=i.aligned_valid, aligned_test=i.aligned_test,
                 features_valid=i.features_valid, features_test=i.features_test,
                 best_path=i.best, shap_path=i.shap, branches=p.branches, held_out=p.held_out,
                 seed=p.seed, fusion_seeds=p.fusion_seeds,
                 bootstrap_resamples=p.bootstrap_resamples)
