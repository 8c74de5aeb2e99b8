"""Shared fixtures: the path to ../shared/datasets and small raw-interaction frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
