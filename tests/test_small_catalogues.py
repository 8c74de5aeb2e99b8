"""Small catalogues: only the protocols asked for are drawn, and what cannot work says so early.

A two-item catalogue trains (softmax CE) and is evaluated under full ranking; the demo at its
schema minimum (120 items) is too small for 99 sampled negatives, and says which users, which
protocol and what to change before any model trains.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import raw_frame

from hybridrec.data.demo import generate_demo
from hybridrec.data.preprocess import PreprocessConfig
from hybridrec.data.store import write_candidates, write_dataset
from hybridrec.errors import HybridrecError
from hybridrec.jobs.evaluate import evaluate_and_export
from hybridrec.jobs.train import save_model, train_on_dataset
from hybridrec.training.settings import ModelSettings


def test_the_demo_at_its_minimum_catalogue_fails_at_candidates_naming_what_to_change(tmp_path):
    raw = generate_demo(seed=7, n_users=60, n_items=120)
    write_dataset(raw, PreprocessConfig(), tmp_path, dataset="demo")
    with pytest.raises(HybridrecError, match=r"datasets\.demo: protocol uniform99 .* users have "
                                             r"fewer .*evaluation\.protocols"):
        write_candidates(tmp_path, "uniform99", seed=0, dataset="demo")


def _two_item_dataset(root):
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 9, 40)
    users = np.repeat(np.arange(1, 41), lengths)
    items = rng.integers(1, 3, len(users))
    write_dataset(raw_frame(users, items), PreprocessConfig(), root, dataset="two")


def _train(root, tmp_path, loss):
    settings = ModelSettings("sasrec", {"hidden_size": 8, "n_heads": 2, "inner_size": 8,
                                        "max_len": 8, "n_layers": 1},
                             {"epochs": 1, "batch_size": 16, "loss": loss, "patience": 1})
    return train_on_dataset(root, settings, seed=0, device="cpu", bf16=False, protocols=["full"],
                            eval_batch_size=64, checkpoint_dir=tmp_path / "checkpoints",
                            history_path=tmp_path / "history.parquet", threads=1), settings


def test_a_two_item_catalogue_trains_and_is_evaluated_under_full_ranking(tmp_path):
    root = tmp_path / "data"
    _two_item_dataset(root)
    # BCE needs a negative outside each training sequence: none exists, said before training
    with pytest.raises(HybridrecError, match=r"models\.sasrec\.loss: 'bce' .* all 2 items"):
        _train(root, tmp_path / "bce", "bce")
    assert not (tmp_path / "bce" / "history.parquet").exists()

    (model, result, _), settings = _train(root, tmp_path, "ce")
    save_model(model, settings, result, tmp_path / "model.pt")
    paths = {("full", split): tmp_path / f"{split}.parquet" for split in ("valid", "test")}
    evaluate_and_export(model_path=tmp_path / "model.pt", dataset_root=root, dataset="two",
                        protocols=["full"], k=10, batch_size=64,
                        metrics_path=tmp_path / "metrics.json", prediction_paths=paths, threads=1)
    metrics = json.loads((tmp_path / "metrics.json").read_text())["splits"]["test"]["full"]
    assert metrics["hr@10"] == 1.0  # every target is ranked among at most two items
    exported = pq.read_table(paths["full", "test"])
    assert len(exported.column("items")[0]) < 10  # lists hold what the catalogue has
