"""Logging for Snakemake scripts: everything goes to the rule's log file (and stderr).

A script that fails on purpose (a :class:`~hybridrec.errors.HybridrecError`: bad input, a
checksum mismatch) ends with its one message as the log's last line, no traceback; anything else
is logged with its traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import TracebackType

from hybridrec.errors import HybridrecError


def configure_logging(log_path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send the package's log records at ``level`` and up, and other libraries' warnings and
    errors, to ``log_path`` and stderr; return the root logger.

    Other libraries stay at WARNING: SHAP alone logs two INFO records per explained row (598 of
    a demo SHAP log's 898 lines), which would bury the job's own lines.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.WARNING, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("hybridrec").setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    return logging.getLogger()


def _log_uncaught(kind: type[BaseException], error: BaseException,
                  traceback: TracebackType | None) -> None:
    log = logging.getLogger("hybridrec")
    if issubclass(kind, HybridrecError):
        log.error("%s", error)
    else:
        log.critical("unexpected %s", kind.__name__, exc_info=(kind, error, traceback))
