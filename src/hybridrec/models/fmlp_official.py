"""Load a checkpoint of the official FMLP-Rec code into :class:`FMLPRec`.

The official state dict (float32; Beauty: 12,101 items + padding, N = 50, d = 64) has

    item_embeddings.weight (n + 1, d)     rows indexed by the ORIGINAL ids of Beauty.txt
    position_embeddings.weight (N, d)
    LayerNorm.weight / .bias (d)
    item_encoder.layer.{i}.filterlayer.complex_weight (1, N // 2 + 1, d, 2)
    item_encoder.layer.{i}.filterlayer.LayerNorm.weight / .bias (d)
    item_encoder.layer.{i}.intermediate.dense_1.weight (4d, d) / .bias (4d)
    item_encoder.layer.{i}.intermediate.dense_2.weight (d, 4d) / .bias (d)
    item_encoder.layer.{i}.intermediate.LayerNorm.weight / .bias (d)

Every tensor is copied as is, except the item table, whose rows are permuted from original ids
to our internal ids (row 0, padding, stays row 0). Items of the checkpoint that our dataset does
not have are dropped; every one of our items must have a row in the checkpoint.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from hybridrec.errors import HybridrecError
from hybridrec.models.fmlp import FMLPRec

ITEM_TABLE = "item_embeddings.weight"


class CheckpointError(HybridrecError, ValueError):
    """A checkpoint does not fit the model; the message lists every key or shape at fault."""


def official_fmlp_key_map(n_layers: int) -> dict[str, str]:
    """Official parameter name -> our parameter name, for ``n_layers`` blocks."""
    names = {
        ITEM_TABLE: "embedding.item_embeddings.weight",
        "position_embeddings.weight": "embedding.position_embeddings.weight",
        "LayerNorm.weight": "embedding.norm.weight",
        "LayerNorm.bias": "embedding.norm.bias",
    }
    for i in range(n_layers):
        official, ours = f"item_encoder.layer.{i}", f"blocks.{i}"
        names[f"{official}.filterlayer.complex_weight"] = f"{ours}.filter.complex_weight"
        for part in ("weight", "bias"):
            names[f"{official}.filterlayer.LayerNorm.{part}"] = f"{ours}.filter.norm.{part}"
            names[f"{official}.intermediate.dense_1.{part}"] = f"{ours}.feed_forward.dense_1.{part}"
            names[f"{official}.intermediate.dense_2.{part}"] = f"{ours}.feed_forward.dense_2.{part}"
            names[f"{official}.intermediate.LayerNorm.{part}"] = f"{ours}.feed_forward.norm.{part}"
    return names


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CheckpointError(f"item_map: {what} must be integers, got {value!r} "
                              f"({type(value).__name__}); the official checkpoint is indexed "
                              f"by the integer ids of Beauty.txt")
    return int(value)


def _item_pairs(item_map: Any) -> list[tuple[int, int]]:
    """(original_id, item) pairs from a frame with those columns or a {original_id: item} map."""
    if hasattr(item_map, "columns"):  # pandas.DataFrame, as in item_ids.parquet
        missing = {"original_id", "item"} - set(item_map.columns)
        if missing:
            raise CheckpointError(f"item_map: missing column(s) {sorted(missing)}; expected "
                                  f"'original_id' and 'item' as in item_ids.parquet")
        pairs: Iterable[tuple[Any, Any]] = zip(item_map["original_id"].tolist(),
                                               item_map["item"].tolist(), strict=True)
    elif isinstance(item_map, Mapping):
        pairs = item_map.items()
    else:
        raise CheckpointError(f"item_map: expected a DataFrame or a Mapping, "
                              f"got {type(item_map).__name__}")
    return [(_as_int(o, "original ids"), _as_int(i, "internal item ids")) for o, i in pairs]


def item_permutation(item_map: Any, num_items: int, official_rows: int) -> Tensor:
    """LongTensor (num_items + 1,): entry ``item`` is the checkpoint row of that item; 0 -> 0."""
    pairs = _item_pairs(item_map)
    items = sorted(i for _, i in pairs)
    if items != list(range(1, num_items + 1)):
        raise CheckpointError(
            f"item_map: internal ids must be 1..{num_items}, each once (the model has "
            f"{num_items} items); got {len(items)} entries, {len(set(items))} distinct, "
            f"range {items[0] if items else None}..{items[-1] if items else None}"
        )
    originals = [o for o, _ in pairs]
    if len(set(originals)) != len(originals):
        raise CheckpointError("item_map: original ids are not unique")
    out_of_range = sorted(o for o in originals if not 1 <= o < official_rows)
    if out_of_range:
        raise CheckpointError(
            f"item_map: {len(out_of_range)} original id(s) have no row in the checkpoint's "
            f"item table (rows 1..{official_rows - 1}), e.g. {out_of_range[:5]}"
        )
    rows = torch.zeros(num_items + 1, dtype=torch.long)
    rows[torch.tensor([i for _, i in pairs])] = torch.tensor(originals)
    return rows


def load_official_fmlp_state_dict(model: FMLPRec, state_dict: Mapping[str, Tensor],
                                  item_map: Any) -> FMLPRec:
    """Copy an official FMLP-Rec state dict into ``model`` (in place) and return it.

    ``item_map``: a ``pandas.DataFrame`` with columns ``original_id`` and ``item`` (our
    ``item_ids.parquet``) or a ``Mapping[int, int]`` from original id to internal id. Raises
    ``CheckpointError`` listing missing and unexpected keys, or every shape that does not fit.
    """
    key_map = official_fmlp_key_map(len(model.blocks))
    missing = sorted(set(key_map) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(key_map))
    if missing or unexpected:
        raise CheckpointError(
            f"official FMLP-Rec state dict does not match a {len(model.blocks)}-block model: "
            f"missing keys {missing}; unexpected keys {unexpected}"
        )
    ours = model.state_dict()
    bad_shapes = []
    for official, name in key_map.items():
        got, want = tuple(state_dict[official].shape), tuple(ours[name].shape)
        if official == ITEM_TABLE:  # any number of rows; width must match
            if len(got) != 2 or got[1] != want[1]:
                bad_shapes.append(f"{official}: {got}, expected (n + 1, {want[1]})")
        elif got != want:
            bad_shapes.append(f"{official}: {got}, expected {want}")
    if bad_shapes:
        raise CheckpointError("official FMLP-Rec state dict has the wrong shape(s) for this "
                              "model (check max_len, hidden_size, inner_size): "
                              + "; ".join(bad_shapes))

    table = state_dict[ITEM_TABLE]  # (n + 1, d), rows = original ids
    rows = item_permutation(item_map, model.num_items, table.shape[0]).to(table.device)
    converted = {name: state_dict[official] for official, name in key_map.items()}
    converted[key_map[ITEM_TABLE]] = table[rows]  # (num_items + 1, d), rows = internal ids
    model.load_state_dict(converted, strict=True)
    return model


def load_official_fmlp_checkpoint(path: str | os.PathLike[str], model: FMLPRec,
                                  item_map: Any) -> FMLPRec:
    """Read an official FMLP-Rec ``.pt`` state dict (tensors only) and load it into ``model``."""
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state_dict).__name__}")
    return load_official_fmlp_state_dict(model, state_dict, item_map)
