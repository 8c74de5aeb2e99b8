"""Running the real workflow from tests: a scratch copy, a snakemake call, result digests."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("workflow", "config", "envs", "profiles")
DEMO = ("--configfile", "config/demo.yaml")

# Wall-clock fields: in history.parquet's columns and in checkpoints (at any depth).
TIMED_FIELDS = ("seconds", "train_seconds", "samples_per_s")


def snakemake(workdir: Path, *args: str, timeout: int = 1500,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def job_rule(line: str) -> str | None:
    """The rule a line of Snakemake's output opens a job of ("rule train:", "localrule all:")."""
    stripped = line.strip()
    if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
        return stripped.split()[1].rstrip(":")
    return None


def ran_rules(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The rule of every job a snakemake call ran (with -n: would run), in the order it printed."""
    return [rule for line in (result.stdout + result.stderr).splitlines()
            if (rule := job_rule(line)) is not None]


def dry_run_jobs(workdir, *configfiles: str, env: dict[str, str] | None = None
                 ) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run with these config files would execute."""
    result = snakemake(workdir, "-n", "--configfile", "config/demo.yaml", *configfiles, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs: list[list[str]] = []
    for line in result.stdout.splitlines():
        stripped = line.strip()
        if (rule := job_rule(line)) is not None:
            jobs.append([rule, ""])
        elif jobs and stripped.startswith("wildcards:"):
            jobs[-1][1] = stripped.removeprefix("wildcards:").strip()
    return [(rule, wildcards) for rule, wildcards in jobs]


def copy_workflow(target: Path) -> Path:
    """The workflow's own files (no results) in ``target``, as a user's clone would have them."""
    target.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy(source, target / name)
    return target


def _digest(path: Path) -> str:
    """SHA-256 of a result file; for files that also record wall time, of everything else."""
    if path.name == "history.parquet":
        frame = pd.read_parquet(path).drop(columns=list(TIMED_FIELDS))
        return hashlib.sha256(pd.util.hash_pandas_object(frame).to_numpy().tobytes()).hexdigest()
    if path.suffix == ".pt":
        payload = torch.load(path, weights_only=True)
        return hashlib.sha256(_canonical(payload).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _canonical(value: object) -> str:
    """A checkpoint's content as text: tensors by their bytes, wall-time fields left out."""
    if isinstance(value, torch.Tensor):
        data = value.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        return f"{hashlib.sha256(data).hexdigest()}:{value.dtype}:{tuple(value.shape)}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{_canonical(v)}" for k, v in sorted(value.items(), key=str)
                              if k not in TIMED_FIELDS) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return repr(value)


def result_digests(workdir: Path) -> dict[str, str]:
    """Every file under results/ by relative path, with its digest."""
    root = workdir / "results"
    return {str(path.relative_to(root)): _digest(path)
            for path in sorted(root.rglob("*")) if path.is_file()}


def assert_results_match(run: Path, reference: Path) -> set[str]:
    """Every result file ``run`` wrote is in ``reference``, with the same digest (a run of part of
    the DAG against a whole one); the paths compared, for the caller to check what they cover."""
    ours, theirs = result_digests(run), result_digests(reference)
    assert set(ours) <= set(theirs), sorted(set(ours) - set(theirs))
    differing = sorted(path for path in ours if ours[path] != theirs[path])
    assert not differing, differing
    return set(ours)
