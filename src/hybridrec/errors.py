"""Exceptions that name the file, line, column or config key at fault."""

from __future__ import annotations

import os


class HybridrecError(Exception):
    """Base class: every error the pipeline raises on purpose."""


class DataFormatError(HybridrecError, ValueError):
    """Malformed input data; the message names the file and the line or column."""

    def __init__(self, path: str | os.PathLike[str], message: str,
                 line: int | None = None, column: str | None = None) -> None:
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line
        self.column = column


class DownloadError(HybridrecError):
    """A download failed or its checksum did not match; the message says how to place it by hand."""


class MissingPackageError(HybridrecError):
    """An optional package that a config choice needs is not installed; the message says how."""


class ConfigError(HybridrecError, ValueError):
    """A config value is invalid; the message names the key."""


class CheckpointError(HybridrecError):
    """A checkpoint file is damaged or is not one of ours; the message names the file."""
