"""Shared fixtures and collection order: the path to ../shared/datasets, small raw-interaction
frames, and the demo run every workflow test reads, built once per session (under pytest-xdist,
by the first worker to ask, the others waiting on a file lock). Collection puts one demo test
first, then the tests that do not need the demo run, then the rest, long ones first."""

from __future__ import annotations

import subprocess
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


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One test on the demo run first, the tests that do not need it next, the other tests on
    it last; within each part, the ones marked ``long`` first.

    With two workers (``make test``: pytest-xdist's default ``--dist load``, which deals the
    first quarter of the tests out in turn and the rest in order as workers free up), the first
    worker builds the demo run at once while the second runs the tests that do not need it;
    the tests on the run come last, the long ones (a SLURM run, a three-branch run) first, so
    that each worker takes one of them. Every worker collects the same order, as xdist
    requires.
    """
    def longest_first(part: list[pytest.Item]) -> list[pytest.Item]:
        return sorted(part, key=lambda item: item.get_closest_marker("long") is None)

    on_demo = longest_first([i for i in items if "demo_run" in getattr(i, "fixturenames", ())])
    rest = longest_first([i for i in items if "demo_run" not in getattr(i, "fixturenames", ())])
    items[:] = on_demo[:1] + rest + on_demo[1:]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, worker_id) -> Path:
    """The whole demo DAG, run once per test session in a scratch copy as ``make demo`` runs it
    (``--cores 2``: two single-threaded jobs at a time; training and evaluation take both cores).

    Under pytest-xdist (``make test`` runs two workers) every worker gets the same run: the
    first to ask builds it in the folder the workers share, the others wait on a file lock, and
    a failed build fails every worker's tests instead of being retried.

    Other runs (killed and resumed with ``--cores 8``, submitted through SLURM) are compared
    with it file by file.
    """
    from filelock import FileLock
    from workflow_helpers import DEMO, copy_workflow, snakemake

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # each worker's base is a subfolder of the session's
        shared = shared.parent
    workdir, outcome = shared / "demo-run", shared / "demo-run.outcome"
    with FileLock(str(shared / "demo-run.lock")):
        if not outcome.exists():
            try:
                result = snakemake(copy_workflow(workdir), "--cores", "2", *DEMO)
                message = "ok" if result.returncode == 0 else result.stderr[-4000:]
            except subprocess.TimeoutExpired as error:
                message = f"the demo run passed its time limit: {error}"
            outcome.write_text(message)
    assert outcome.read_text() == "ok", outcome.read_text()
    return workdir
