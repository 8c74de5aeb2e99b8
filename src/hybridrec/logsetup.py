"""Logging for Snakemake scripts: everything goes to the rule's log file (and stderr)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def configure_logging(log_path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send the package's log records to ``log_path`` and stderr; return the root logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    return logging.getLogger()
