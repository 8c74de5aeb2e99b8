from hybridrec.jobs.fusion import run_fusion
from hybridrec.provenance import start_job

start_job(snakemake)
i, o, p, w = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
run_fusion(o.summary, o.alpha, o.fused, o.figure,
           title=f"Gate alpha, {w.dataset}, {w.protocol} (test)",
           aligned_valid=i.aligned_valid, aligned_test=i.aligned_test,
           features_test=i.features_test, gate_path=i.gate, branches=p.branches, seed=p.seed,
           fusion_seeds=p.fusion_seeds, bootstrap_resamples=p.bootstrap_resamples)
