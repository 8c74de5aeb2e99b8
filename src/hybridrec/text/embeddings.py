"""The ``embed_items`` stage: one vector per item of a dataset, and the loader models use.

``results/text/{dataset}/item_embeddings.parquet`` (layout: ``docs/contracts.md``) has one row
per internal item id, in the order of the dataset's ``item_ids.parquet``. An item without text
(no row in the text file, or an empty text) gets the zero vector and ``has_text = false``; their
count is logged and kept in the file's metadata (``items_without_text``), so the fallback is never
silent. The encoder never sees them: TF-IDF is fitted on the items that have text.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from hybridrec.data.item_text import align_item_text
from hybridrec.errors import DataFormatError
from hybridrec.io import write_table
from hybridrec.text.encoders import EncoderSpec, encode_texts

log = logging.getLogger(__name__)


def item_embeddings_table(item_ids: pd.DataFrame, text: pd.DataFrame, spec: EncoderSpec,
                          seed: int, threads: int,
                          source: str) -> tuple[pa.Table, dict[str, str]]:
    """The embeddings table of a dataset's items and its metadata (see the module docstring).

    ``item_ids`` is the dataset's ``item_ids.parquet``; ``text`` a reader's frame from
    ``source`` (a path, or ``demo``).
    """
    aligned = align_item_text(item_ids, text, source)
    has_text = aligned["has_text"].to_numpy()
    missing = int((~has_text).sum())
    if missing:
        examples = aligned.loc[~has_text, "original_id"].iloc[:5].tolist()
        log.warning("%d of %d items have no text in %s (e.g. ids %s): they get the zero vector, "
                    "flagged has_text = false", missing, len(aligned), source, examples)
    encoded = encode_texts(aligned.loc[has_text, "text"].tolist(), spec, seed, threads)
    dim = encoded.vectors.shape[1]
    vectors = np.zeros((len(aligned), dim), dtype=np.float32)  # (items, dim)
    vectors[has_text] = encoded.vectors
    table = pa.table({
        "item": pa.array(aligned["item"].to_numpy(np.int32)),
        "original_id": pa.array(aligned["original_id"].array),
        "has_text": pa.array(has_text),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
    })
    metadata = {
        "encoder": spec.kind,
        "encoder_model": encoded.model,
        "weights_sha256": encoded.weights_sha256,
        "dim": str(dim),
        "items": str(len(aligned)),
        "items_without_text": str(missing),
        "text_source": source,
    }
    log.info("embedded %d items (%d without text) with %s: dim %d, weights sha256 %s",
             len(aligned), missing, encoded.model, dim, encoded.weights_sha256)
    return table, metadata


def write_item_embeddings(item_ids_path: str | Path, text: pd.DataFrame, spec: EncoderSpec,
                          seed: int, threads: int, source: str, output: str | Path) -> None:
    """Embed the items of ``item_ids_path`` and write ``output`` atomically."""
    item_ids = pd.read_parquet(item_ids_path)
    table, metadata = item_embeddings_table(item_ids, text, spec, seed, threads, source)
    write_table(table, output, {**metadata, "item_ids": str(item_ids_path)})


def load_item_embeddings(path: str | Path, num_items: int) -> torch.Tensor:
    """(num_items + 1, dim) float32: row ``i`` is item ``i``'s vector, row 0 (padding) zeros.

    The matrix M2Rec's semantic branch takes (``model.set_item_text(matrix)``). The file must hold
    items ``1..num_items`` in order, the ids of the dataset the model is trained on.
    """
    table = pq.read_table(path, columns=["item", "vector"])
    items = table.column("item").to_numpy()
    if len(items) != num_items or not np.array_equal(items, np.arange(1, num_items + 1)):
        raise DataFormatError(path, f"expected the items 1..{num_items} in order, found "
                                    f"{len(items)} rows (items {items[:3].tolist()}...): "
                                    f"embeddings of another dataset?")
    column = table.column("vector").combine_chunks()
    dim = column.type.list_size
    matrix = np.zeros((num_items + 1, dim), dtype=np.float32)  # (num_items + 1, dim)
    matrix[1:] = column.flatten().to_numpy().reshape(num_items, dim)
    return torch.from_numpy(matrix)
