"""The demo DAG through `snakemake --profile profiles/slurm` on a real single-node SLURM cluster.

The run starts from a copy of the local demo run and retrains FMLP-Rec from nothing
(`--forcerun` its model, checkpoints removed), then everything on the way to the `full`
protocol's fusion: every kind of job the profile sizes (training and evaluation with a GPU, the
hybrid's shards and the jobs between), in the DAG's order, each level waiting for the files of
the one before. The jobs it leaves out (the data stage, LinRec, the second protocol's hybrid
run, the tables) are more of the same kinds.

The cluster (tests/slurm_cluster.py) is started by the test itself; it needs root and Debian's
SLURM packages (`make system-deps`), and the test skips with the reason where either is missing.
The cluster has no accounting daemon, so the executor polls with `squeue` (finished jobs stay
visible for MinJobAge = 3600 s).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from slurm_cluster import SlurmCluster, unavailable_reason
from workflow_helpers import DEMO, assert_results_match, snakemake

pytestmark = pytest.mark.integration

TARGET = "results/hybrid/demo/full/evaluation.json"
RETRAINED = "results/models/demo/fmlp"
# every rule from FMLP-Rec's training to the target (`download`, a localrule, is never submitted;
# SHAP feeds the figures only, since the gate takes the paper's fixed features)
RULES = {"train", "evaluate", "align", "features", "gate_search_shard", "gate_search_gather",
         "fusion"}
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) "
                       r"\(log: .*?/slurm_logs/rule_([a-z_0-9]+)/")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no SLURM cluster: {reason}")
    pytest.importorskip("snakemake_executor_plugin_slurm",
                        reason="pip install -e '.[slurm]' for the SLURM executor plugin")
    slurm = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        slurm.start()
        yield slurm
    finally:
        slurm.stop()


@pytest.mark.long
def test_demo_dag_runs_as_slurm_jobs(cluster, demo_run, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)  # copy2 keeps the mtimes Snakemake reads
    shutil.rmtree(workdir / RETRAINED / "checkpoints")  # trained from epoch 1, not resumed
    try:
        result = snakemake(
            workdir, TARGET,  # before --configfile, which takes every argument after it
            "--forcerun", f"{RETRAINED}/model.pt", "--profile", "profiles/slurm", *DEMO,
            # a test node has few cores: cap every job's cpus-per-task at what it has
            "--max-threads", str(cluster.cpus),
            "--slurm-status-command", "squeue", "--slurm-no-account",
            "--slurm-init-seconds-before-status-checks", "1",
            "--seconds-between-status-checks", "2",
            timeout=1200, env=cluster.env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the SLURM run passed its 20-minute limit\n{cluster.logs()[-4000:]}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:] + cluster.logs()[-2000:]

    jobs = {int(job_id): rule for job_id, rule in SUBMITTED.findall(output)}
    with capsys.disabled():  # into the CI log
        print("\nSLURM job ids: " + ", ".join(
            f"{job_id} ({rule})" for job_id, rule in sorted(jobs.items())))
    assert set(jobs.values()) == RULES

    # SLURM's own record: every job Snakemake reported ran on the cluster and completed
    listing = cluster.run("squeue", "--states=all", "--noheader", "--format=%i %T").stdout
    states = dict(line.split() for line in listing.splitlines() if line.strip())
    assert {str(job_id) for job_id in jobs} <= set(states), (jobs, states)
    assert all(states[str(job_id)] == "COMPLETED" for job_id in jobs), states
    for job_id, rule in jobs.items():  # training and evaluation asked for a GPU, as configured
        record = cluster.run("scontrol", "show", "job", str(job_id)).stdout
        assert ("gpu" in record) == (rule in ("train", "evaluate")), (rule, record)

    # the cluster jobs rewrote their files with exactly what the local run computed
    assert "resuming from" not in (workdir / "logs/train/demo/fmlp.log").read_text()
    assert_results_match(workdir, demo_run)
