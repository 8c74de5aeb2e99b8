from hybridrec.jobs.fusion import run_fusion
from hybridrec.provenance import start_job

start_job(snakemake)
run_fusion(aligned_valid=snakemake.input.aligned_valid, aligned_test=snakemake.input.aligned_test,
           features_test=snakemake.input.features_test, gate_path=snakemake.input.gate,
           other_gate_paths=snakemake.input.other_gates, branches=snakemake.params.branches,
           seed=snakemake.params.seed, fusion_seeds=snakemake.params.fusion_seeds,
           bootstrap_resamples=snakemake.params.bootstrap_resamples,
           summary_path=snakemake.output.summary, alpha_path=snakemake.output.alpha,
           fused_path=snakemake.output.fused, figure_path=snakemake.output.figure,
           title=f"Gate alpha, {snakemake.params.run} (test)")
