"""Official FMLP-Rec checkpoint -> FMLPRec: names, shapes, item-id permutation, numerics.

The reference forward pass below is written from the official equations in numpy (float64),
on the official tensors and the ORIGINAL item ids; our model sees internal ids only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hybridrec.models import build_model
from hybridrec.models.fmlp import FMLPRec
from hybridrec.models.fmlp_official import (
    CheckpointError,
    load_official_fmlp_checkpoint,
    load_official_fmlp_state_dict,
    official_fmlp_key_map,
)

OFFICIAL_ITEMS = 30  # Beauty-like, small: official table has 31 rows (0 = padding)
N, D, LAYERS = 10, 8, 2


def official_state_dict(seed: int = 0, n: int = N) -> dict[str, torch.Tensor]:
    """Random tensors in the official layout (larger than the 0.02 init, to exercise every op)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 0.5, offset: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale + offset

    sd = {
        "item_embeddings.weight": rand(OFFICIAL_ITEMS + 1, D),
        "position_embeddings.weight": rand(n, D),
        "LayerNorm.weight": rand(D, offset=1.0),
        "LayerNorm.bias": rand(D, scale=0.1),
    }
    for i in range(LAYERS):
        p = f"item_encoder.layer.{i}"
        sd[f"{p}.filterlayer.complex_weight"] = rand(1, n // 2 + 1, D, 2)
        sd[f"{p}.filterlayer.LayerNorm.weight"] = rand(D, offset=1.0)
        sd[f"{p}.filterlayer.LayerNorm.bias"] = rand(D, scale=0.1)
        sd[f"{p}.intermediate.dense_1.weight"] = rand(4 * D, D)
        sd[f"{p}.intermediate.dense_1.bias"] = rand(4 * D, scale=0.1)
        sd[f"{p}.intermediate.dense_2.weight"] = rand(D, 4 * D)
        sd[f"{p}.intermediate.dense_2.bias"] = rand(D, scale=0.1)
        sd[f"{p}.intermediate.LayerNorm.weight"] = rand(D, offset=1.0)
        sd[f"{p}.intermediate.LayerNorm.bias"] = rand(D, scale=0.1)
    return sd


def item_map_frame() -> pd.DataFrame:
    """Our dataset keeps 24 of the 30 official items, numbered in a shuffled (non-identity)
    order."""
    rng = np.random.default_rng(1)
    originals = rng.choice(np.arange(1, OFFICIAL_ITEMS + 1), size=24, replace=False)
    return pd.DataFrame({"original_id": originals.astype("int64"),
                         "item": np.arange(1, 25, dtype="int32")})


def official_last_position_scores(sd: dict[str, torch.Tensor], seq: np.ndarray) -> np.ndarray:
    """Official FMLPRecModel in eval mode: (B, N) original ids -> (B, n + 1) scores."""
    w = {k: v.double().numpy() for k, v in sd.items()}
    erf = np.vectorize(math.erf)

    def layer_norm(x: np.ndarray, prefix: str) -> np.ndarray:
        u = x.mean(-1, keepdims=True)
        s = ((x - u) ** 2).mean(-1, keepdims=True)
        return w[prefix + "weight"] * (x - u) / np.sqrt(s + 1e-12) + w[prefix + "bias"]

    n = seq.shape[1]
    x = w["item_embeddings.weight"][seq] + w["position_embeddings.weight"][np.arange(n)]
    x = layer_norm(x, "LayerNorm.")
    for i in range(LAYERS):
        p = f"item_encoder.layer.{i}."
        cw = w[p + "filterlayer.complex_weight"]
        spectrum = np.fft.rfft(x, axis=1, norm="ortho") * (cw[..., 0] + 1j * cw[..., 1])
        y = np.fft.irfft(spectrum, n=n, axis=1, norm="ortho")
        x = layer_norm(y + x, p + "filterlayer.LayerNorm.")
        h = x @ w[p + "intermediate.dense_1.weight"].T + w[p + "intermediate.dense_1.bias"]
        h = h * 0.5 * (1.0 + erf(h / math.sqrt(2.0)))
        h = h @ w[p + "intermediate.dense_2.weight"].T + w[p + "intermediate.dense_2.bias"]
        x = layer_norm(h + x, p + "intermediate.LayerNorm.")
    result: np.ndarray = x[:, -1, :] @ w["item_embeddings.weight"].T
    return result


def fresh_model(max_len: int = N) -> FMLPRec:
    model = build_model("fmlp", 24, max_len=max_len, hidden_size=D, n_layers=LAYERS)
    assert isinstance(model, FMLPRec)
    return model.eval()


def sequences_in_both_id_spaces(item_map: pd.DataFrame) -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(2)
    internal = rng.integers(1, 25, size=(4, N))
    for b, length in enumerate([N, 6, 3, 1]):
        internal[b, : N - length] = 0
    to_original = np.zeros(25, dtype=np.int64)
    to_original[item_map["item"].to_numpy()] = item_map["original_id"].to_numpy()
    return to_original[internal], torch.as_tensor(internal)


@pytest.mark.parametrize("as_mapping", [False, True])
def test_loaded_model_matches_the_official_equations(as_mapping: bool) -> None:
    sd, frame = official_state_dict(), item_map_frame()
    item_map = dict(zip(frame["original_id"], frame["item"], strict=True)) if as_mapping else frame
    model = load_official_fmlp_state_dict(fresh_model(), sd, item_map)
    original_seq, internal_seq = sequences_in_both_id_spaces(frame)

    with torch.no_grad():
        ours = model.logits(model.last_hidden(internal_seq)).double().numpy()  # (B, 25)
    official = official_last_position_scores(sd, original_seq)  # (B, 31)
    columns = np.concatenate([[0], frame.sort_values("item")["original_id"].to_numpy()])
    np.testing.assert_allclose(ours, official[:, columns], rtol=1e-5, atol=1e-5)
    # the permutation moved rows: padding row kept, item i holds the row of its original id
    table = model.item_embeddings.weight.detach()
    assert torch.equal(table[0], sd["item_embeddings.weight"][0])
    item, original = int(frame["item"].iloc[3]), int(frame["original_id"].iloc[3])
    assert torch.equal(table[item], sd["item_embeddings.weight"][original])


def test_checkpoint_file_round_trip(tmp_path: Path) -> None:
    sd, frame = official_state_dict(), item_map_frame()
    path = tmp_path / "FMLPRec-Beauty-1.pt"
    torch.save(sd, path)
    model = load_official_fmlp_checkpoint(path, fresh_model(), frame)
    pos = model.embedding.position_embeddings.weight
    assert torch.equal(pos, sd["position_embeddings.weight"])


def test_missing_and_unexpected_keys_are_listed() -> None:
    sd = official_state_dict()
    del sd["item_encoder.layer.1.filterlayer.complex_weight"]
    del sd["LayerNorm.bias"]
    sd["item_encoder.layer.2.intermediate.dense_1.weight"] = torch.zeros(4 * D, D)
    with pytest.raises(CheckpointError) as err:
        load_official_fmlp_state_dict(fresh_model(), sd, item_map_frame())
    message = str(err.value)
    assert "missing keys ['LayerNorm.bias', 'item_encoder.layer.1.filterlayer.complex_weight']" \
        in message
    assert "unexpected keys ['item_encoder.layer.2.intermediate.dense_1.weight']" in message


def test_shape_mismatch_is_listed() -> None:
    sd = official_state_dict(n=N + 2)  # checkpoint trained with another max_len
    with pytest.raises(CheckpointError, match=r"position_embeddings\.weight: \(12, 8\), expected "
                                              r"\(10, 8\).*complex_weight: \(1, 7, 8, 2\)"):
        load_official_fmlp_state_dict(fresh_model(), sd, item_map_frame())


def test_item_map_must_cover_our_items_with_checkpoint_rows() -> None:
    sd, frame = official_state_dict(), item_map_frame()
    with pytest.raises(CheckpointError, match="internal ids must be 1..24"):
        load_official_fmlp_state_dict(fresh_model(), sd, frame.iloc[1:])
    bad = frame.copy()
    bad.loc[0, "original_id"] = OFFICIAL_ITEMS + 5
    with pytest.raises(CheckpointError, match="no row in the checkpoint"):
        load_official_fmlp_state_dict(fresh_model(), sd, bad)
    with pytest.raises(CheckpointError, match="integer ids of Beauty.txt"):
        load_official_fmlp_state_dict(fresh_model(), sd,
                                      frame.assign(original_id=frame["original_id"].astype(str)))
    with pytest.raises(CheckpointError, match="column"):
        load_official_fmlp_state_dict(fresh_model(), sd, frame.rename(columns={"item": "id"}))


def test_key_map_covers_every_parameter_of_our_model() -> None:
    ours = set(fresh_model().state_dict())
    assert set(official_fmlp_key_map(LAYERS).values()) == ours
