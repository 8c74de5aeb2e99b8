"""No output stands for settings it was not made with: a setting changed upstream of a job that
then fails or is killed reaches every reader of that job (workflow/rules/lineage.smk).

Snakemake deletes a job's outputs when it starts it, so a failed or killed job leaves its outputs
missing; and Snakemake does not rebuild a missing intermediate whose readers are up to date. Each
case below changes a setting one stage reads, removes that stage's outputs as a failed or killed
job leaves them, and checks that the next run schedules the stage again (never "Nothing to be
done", which would report the old results under the new setting).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_workflow import dry_run_jobs

pytestmark = pytest.mark.integration

H = "results/hybrid/demo/full"
# stage -> (a setting it reads, the outputs its failed job leaves missing, its rule)
STAGES = {
    "data": ("datasets:\n  demo:\n    demo: {users: 900}\n",
             ["results/data/demo/split", "results/data/demo/sequences.parquet"], "preprocess"),
    "candidates": ("seed: 43\n", ["results/data/demo/candidates"], "candidates"),
    "training": ("models:\n  linrec:\n    lr: 0.002\n",
                 ["results/models/demo/linrec/model.pt",
                  "results/models/demo/linrec/history.parquet"], "train"),
    "evaluation": ("evaluation:\n  batch_size: 512\n",
                   ["results/metrics/demo/linrec.json", "results/predictions/demo/linrec"],
                   "evaluate"),
    "align": ("hybrid:\n  branches: [fmlp, linrec]\n", [f"{H}/aligned"], "align"),
    "features": ("hybrid:\n  branches: [fmlp, linrec]\n", [f"{H}/aligned", f"{H}/features"],
                 "features"),
    "shap": ("hybrid:\n  shap_balanced: false\n", [f"{H}/shap.json"], "shap"),
    "search": ("hybrid:\n  held_out: 0.2\n",
               [f"{H}/search/shard0.parquet", f"{H}/search/shard0.gate_val_loss.pt",
                f"{H}/search/shard0.gate_mrr.pt"], "gate_search_shard"),
    "fusion": ("hybrid:\n  fusion_seeds: [0, 1]\n",
               [f"{H}/evaluation.json", f"{H}/alpha_test.parquet", f"{H}/fused_test.parquet"],
               "fusion"),
    "tables": ("hybrid:\n  fusion_seeds: [0, 1]\n",
               [f"{H}/evaluation.json", "results/tables/table5.csv"], "hybrid_tables"),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_failed_job_after_a_setting_change_is_rerun_with_its_readers(demo_run: Path,
                                                                       tmp_path: Path,
                                                                       stage: str) -> None:
    setting, outputs, rule = STAGES[stage]
    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)  # copy2 keeps the mtimes Snakemake reads
    (workdir / "change.yaml").write_text(setting)
    for output in outputs:  # what the changed job leaves when it fails or is killed
        path = workdir / output
        assert path.exists(), output
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    jobs = {job_rule for job_rule, _ in dry_run_jobs(workdir, "change.yaml")}
    assert rule in jobs, sorted(jobs)
    assert jobs & {"table4", "model_tables", "hybrid_tables"}, sorted(jobs)  # and its readers
