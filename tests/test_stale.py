"""No output stands for settings it was not made with: a setting changed upstream of a job that
then fails or is killed reaches every reader of that job (workflow/rules/lineage.smk).

Snakemake deletes a job's outputs when it starts it, so a failed or killed job leaves its outputs
missing; and Snakemake does not rebuild a missing intermediate whose readers are up to date. Each
case below changes a setting one stage reads, runs the stages before it for real where they read
the setting too, removes the outputs of every job of the stage (as jobs that all failed or were
killed leave them) and checks that the next run schedules the stage again: never "Nothing to be
done", which would report the old results under the new setting.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from workflow_helpers import DEMO, dry_run_jobs, snakemake

pytestmark = pytest.mark.integration

H = "results/hybrid/demo/*"
# stage -> (a setting it reads, what its failed jobs leave missing (globs), its rule, and the
# rule the stages before it ran up to with the new setting, where they read it too)
STAGES = {
    "data": ("datasets:\n  demo:\n    demo: {users: 900}\n",
             ["results/data/demo/split", "results/data/demo/sequences.parquet"],
             "preprocess", None),
    "candidates": ("seed: 43\n", ["results/data/demo/candidates"], "candidates", None),
    "training": ("models:\n  linrec:\n    lr: 0.002\n",
                 ["results/models/demo/linrec/model.pt",
                  "results/models/demo/linrec/history.parquet"], "train", None),
    "evaluation": ("evaluation:\n  batch_size: 512\n",
                   ["results/metrics/demo/*.json", "results/predictions/demo/*"],
                   "evaluate", None),
    "align": ("hybrid:\n  branches: [fmlp, linrec]\n", [f"{H}/aligned"], "align", None),
    "features": ("hybrid:\n  branches: [fmlp, linrec]\n", [f"{H}/features"], "features",
                 "features"),
    "shap": ("hybrid:\n  shap_balanced: false\n", [f"{H}/shap.json"], "shap", None),
    "search": ("hybrid:\n  held_out: 0.2\n", [f"{H}/search/shard*"], "gate_search_shard",
               None),
    "fusion": ("hybrid:\n  fusion_seeds: [0, 1]\n",
               [f"{H}/evaluation.json", f"{H}/alpha_test.parquet", f"{H}/fused_test.parquet"],
               "fusion", None),
    "tables": ("hybrid:\n  fusion_seeds: [0, 1]\n",
               ["results/tables/table5.csv", "results/tables/table5_extended.csv",
                "results/tables/table6.csv", "results/tables/gate_settings.csv"],
               "hybrid_tables", "hybrid_tables"),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_failed_job_after_a_setting_change_is_rerun_with_its_readers(demo_run: Path,
                                                                       tmp_path: Path,
                                                                       stage: str) -> None:
    setting, outputs, rule, run_before = STAGES[stage]
    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)  # copy2 keeps the mtimes Snakemake reads
    (workdir / "change.yaml").write_text(setting)
    if run_before is not None:  # the jobs before the stage ran with the new setting
        result = snakemake(workdir, "--cores", "2", "--omit-from", run_before, *DEMO,
                           "change.yaml")
        assert result.returncode == 0, result.stderr[-3000:]
    fail(workdir, outputs)
    jobs = {job_rule for job_rule, _ in dry_run_jobs(workdir, "change.yaml")}
    assert rule in jobs, sorted(jobs)
    assert jobs & {"table4", "model_tables", "hybrid_tables"}, sorted(jobs)  # and its readers


def fail(workdir: Path, outputs: list[str]) -> None:
    """Leave ``outputs`` (globs) as a failed or killed job does: Snakemake deletes the files
    and their metadata records (``Persistence.cleanup``)."""
    files = sorted({str(f.relative_to(workdir)) for pattern in outputs
                    for path in workdir.glob(pattern)
                    for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file()})
    assert files, outputs
    result = snakemake(workdir, "--cleanup-metadata", *files, *DEMO, "change.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in files:
        (workdir / name).unlink()
