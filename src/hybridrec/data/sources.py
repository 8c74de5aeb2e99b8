"""A declared dataset (one `datasets.<name>` config entry) to raw interactions and item text."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hybridrec.data.demo import generate_demo, generate_demo_item_text
from hybridrec.data.download import verify_checksum
from hybridrec.data.item_text import read_item_text
from hybridrec.data.preprocess import PreprocessConfig
from hybridrec.data.readers import read_interactions

log = logging.getLogger(__name__)


def load_raw(dataset: Mapping[str, Any], raw_path: str | Path | None) -> pd.DataFrame:
    """Read (or, for ``demo``, generate) the raw interactions of one dataset entry.

    The configured checksum is checked here too when it describes ``raw_path`` itself (no
    archive), so a file placed by hand, which Snakemake never re-downloads, is still verified.
    """
    if dataset["format"] == "demo":
        demo = dataset.get("demo", {})
        return generate_demo(seed=demo.get("seed", 7), n_users=demo.get("users", 1000),
                             n_items=demo.get("items", 500))
    if raw_path is None:
        raise ValueError(f"format {dataset['format']!r} needs a raw file")
    if dataset.get("checksum") and not dataset.get("archive_member"):
        verify_checksum(raw_path, dataset["checksum"], source=dataset.get("url"))
    log.info("reading %s (%s)", raw_path, dataset["format"])
    return read_interactions(raw_path, dataset["format"], **dataset.get("options", {}))


def preprocess_config(dataset: Mapping[str, Any]) -> PreprocessConfig:
    """The dataset entry's `preprocess` block as a PreprocessConfig (schema defaults apply)."""
    return PreprocessConfig(**dataset.get("preprocess", {}))


def load_item_text(item_text: Mapping[str, Any], demo: Mapping[str, Any] | None,
                   path: str | Path | None) -> pd.DataFrame:
    """Read (or, for format ``demo``, generate) a dataset's ``item_text`` entry as item text.

    ``demo`` is the dataset's ``demo`` block (its seed and item count), used by format ``demo``.
    The entry's checksum, if any, is verified first.
    """
    if item_text["format"] == "demo":
        demo = demo or {}
        return generate_demo_item_text(seed=demo.get("seed", 7), n_items=demo.get("items", 500))
    if path is None:
        raise ValueError(f"item text format {item_text['format']!r} needs a file")
    if item_text.get("checksum"):
        verify_checksum(path, item_text["checksum"])
    log.info("reading item text %s (%s)", path, item_text["format"])
    return read_item_text(path, item_text["format"], **item_text.get("options", {}))
