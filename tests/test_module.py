"""Our workflow used as a Snakemake `module` by another workflow (the catalog's usage), on demo:
from a local path, and from a git repository (Snakemake's git source, as `github(...)` resolves
one), with a dry run of the whole DAG and a small real run through the module.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from workflow_helpers import REPO, WORKFLOW_FILES, snakemake

pytestmark = pytest.mark.integration

WRAPPER = """\
configfile: "{config}/config.yaml"
configfile: "{config}/demo.yaml"


module hybridrec:
    snakefile:
        {snakefile}
    config:
        config


use rule * from hybridrec as hybridrec_*


rule all:
    input:
        rules.hybridrec_all.input,
    default_target: True
"""


def git_repository(target: Path) -> Path:
    """The workflow's files committed to a fresh git repository (branch main), as a clone of
    ours would serve them."""
    target.mkdir()
    for name in WORKFLOW_FILES:
        shutil.copytree(REPO / name, target / name)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "workflow"]):
        subprocess.run(["git", *command], cwd=target, check=True)
    return target


def wrapper(workdir: Path, snakefile: str, config: Path) -> Path:
    workdir.mkdir(exist_ok=True)
    (workdir / "Snakefile").write_text(WRAPPER.format(snakefile=snakefile, config=config))
    return workdir


def assert_whole_dag(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in ("preprocess", "candidates", "train", "evaluate", "fusion", "hybrid_tables",
                 "report_pages"):
        assert f"rule hybridrec_{rule}:" in result.stdout, rule
    assert "dataset=demo" in result.stdout and "dataset=ml-1m" not in result.stdout


def test_a_wrapper_workflow_imports_ours_as_a_module_from_a_path(tmp_path: Path) -> None:
    workdir = wrapper(tmp_path, f'"{REPO}/workflow/Snakefile"', REPO / "config")
    assert_whole_dag(snakemake(workdir, "-n", "--cores", "1"))


# Snakemake 9.27's `code` rerun trigger fails on a git module's scripts (Job._path_to_source_file
# joins a LocalSourceFile to the git base directory: a TypeError). Our rules carry the content
# hash of their code among their params, so leaving that trigger out loses nothing (README).
TRIGGERS = ("--rerun-triggers", "mtime", "params", "input", "software-env")


def test_a_wrapper_workflow_imports_ours_from_a_git_repository(tmp_path: Path) -> None:
    repository = git_repository(tmp_path / "repository")
    snakefile = f'gitfile(repo_path="{repository}", path="workflow/Snakefile", ref="main")'
    workdir = wrapper(tmp_path / "user", snakefile, repository / "config")
    assert_whole_dag(snakemake(workdir, "-n", "--cores", "1", *TRIGGERS))
    # a real run of the first stages through the module: the scripts come from the repository
    result = snakemake(workdir, "results/tables/table4.csv", "--cores", "1", *TRIGGERS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "results/tables/table4.csv").read_text().startswith("dataset,")
