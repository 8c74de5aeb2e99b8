"""Shared fixtures: the path to ../shared/datasets and small raw-interaction frames."""

from __future__ import annotations

from pathlib import Path

from hybridrec.cpu import configure_cpu_runtime

configure_cpu_runtime()  # before any test imports torch: thread-count-independent MKL sums

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def shared_file(relative: str) -> Path:
    """A file under ../shared/datasets, or skip the test with a message naming it."""
    path = SHARED_DATASETS / relative
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing "
                    "(CI has ../shared beside the repository)")
    return path


def raw_frame(users, items, timestamps=None, ratings=None) -> pd.DataFrame:
    """Raw interactions in the reader contract (docs/contracts.md)."""
    n = len(users)
    return pd.DataFrame({
        "user": np.asarray(users),
        "item": np.asarray(items),
        "timestamp": pd.array(timestamps if timestamps is not None else [pd.NA] * n, dtype="Int64"),
        "rating": pd.array(ratings if ratings is not None else [pd.NA] * n, dtype="Float64"),
    })


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The whole demo DAG, run once per session in a scratch copy as ``make demo`` runs it
    (``--cores 2``: two single-threaded jobs at a time; training and evaluation take both cores).

    Other runs (killed and resumed with ``--cores 8``, submitted through SLURM) are compared
    with it file by file.
    """
    from workflow_helpers import DEMO, copy_workflow, snakemake

    workdir = copy_workflow(tmp_path_factory.mktemp("demo"))
    result = snakemake(workdir, "--cores", "2", *DEMO)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir
