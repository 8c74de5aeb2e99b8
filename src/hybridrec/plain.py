"""Plain Python values from NumPy ones, for JSON files, Optuna studies and error messages."""

from __future__ import annotations

from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python number (or bool, or string) it holds; anything else as is."""
    return value.item() if isinstance(value, np.generic) else value
