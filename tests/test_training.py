"""The training loop: determinism, exact resume after a kill or a damaged checkpoint, early
stopping, checkpoints kept per configuration."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hybridrec.errors import CheckpointError, ConfigError
from hybridrec.models import build_model
from hybridrec.training import checkpoint
from hybridrec.training.batches import Batch, Sequences, TrainingBatches
from hybridrec.training.checkpoint import load_best, load_checkpoint
from hybridrec.training.config import TrainConfig
from hybridrec.training.loop import TrainResult, batch_loss, train

NUM_ITEMS = 40
MAX_LEN = 8


class TinyRec(nn.Module):
    """Embedding -> dropout -> GRU: the Models interface at test size, with dropout RNG."""

    def __init__(self, num_items: int = NUM_ITEMS, d: int = 16, max_len: int = MAX_LEN) -> None:
        super().__init__()
        self.max_len = max_len
        self.item_embeddings = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.dropout = nn.Dropout(0.3)
        self.gru = nn.GRU(d, d, batch_first=True)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.dropout(self.item_embeddings(seq)))  # (B, N, d)
        return out


def make_data(users: int = 48, seed: int = 0) -> tuple[Sequences, torch.Tensor, torch.Tensor]:
    """Training sequences plus a validation input (B, N) and target per user."""
    g = torch.Generator().manual_seed(seed)
    seqs: list[list[int]] = []
    for _ in range(users):
        length = int(torch.randint(4, 16, (1,), generator=g))
        start = int(torch.randint(1, NUM_ITEMS + 1, (1,), generator=g))
        seqs.append([(start + 3 * i) % NUM_ITEMS + 1 for i in range(length)])  # learnable
    train_part = [s[:-1] for s in seqs]
    val_inputs = torch.tensor([([0] * MAX_LEN + s)[-MAX_LEN:] for s in train_part])
    val_targets = torch.tensor([s[-1] for s in seqs])
    return Sequences.from_lists(train_part, NUM_ITEMS), val_inputs, val_targets


DATA, VAL_INPUTS, VAL_TARGETS = make_data()


def validate(model: Any) -> dict[str, dict[str, float]]:
    """Full-ranking MRR and HR@10 of the held-out item (deterministic in the weights)."""
    hidden = model(VAL_INPUTS)[:, -1]  # (U, d)
    scores = hidden @ model.item_embeddings.weight.T  # (U, I + 1)
    target = scores.gather(1, VAL_TARGETS[:, None])
    rank = (scores[:, 1:] > target).sum(1) + 1
    return {"full": {"mrr": float((1.0 / rank).mean()),
                     "hr@10": float((rank <= 10).float().mean())}}


def scripted_mrr(*values: float) -> Any:
    """A validate callable returning the next of ``values`` as the full-ranking MRR."""
    scores = iter(values)
    return lambda model: {"full": {"mrr": next(scores)}}


def config(**overrides: Any) -> TrainConfig:
    base = dict(epochs=4, batch_size=16, lr=5e-3, loss="bce", objective="prefix", patience=10,
                val_metric="mrr", val_protocols=("full",), seed=7, device="cpu", num_threads=1)
    return TrainConfig(**{**base, **overrides})


def fresh_model(seed: int = 1) -> TinyRec:
    torch.manual_seed(seed)
    return TinyRec()


def run(tmp: Path, cfg: TrainConfig, model: nn.Module | None = None, **kwargs: Any
        ) -> tuple[nn.Module, TrainResult]:
    model = model or fresh_model()
    kwargs.setdefault("validate", validate)
    result = train(model, DATA, cfg, checkpoint_dir=tmp / "ckpt", history_path=tmp / "hist.pq",
                   **kwargs)
    return model, result


def checkpoint_sets(tmp: Path) -> list[Path]:
    """The per-configuration checkpoint folders of a run in ``tmp``."""
    return sorted(path for path in (tmp / "ckpt").iterdir() if path.is_dir())


def epoch_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("epoch-*.pt"))


def newest_checkpoint(tmp: Path) -> dict[str, Any]:
    """The newest epoch checkpoint of the only configuration trained in ``tmp``."""
    (folder,) = checkpoint_sets(tmp)
    return load_checkpoint(folder / epoch_files(folder)[-1])


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def truncate(path: Path, size: int = 5_000) -> None:
    data = path.read_bytes()
    assert len(data) > size
    path.write_bytes(data[:size])


def assert_same_weights(a: nn.Module | dict[str, torch.Tensor],
                        b: nn.Module | dict[str, torch.Tensor]) -> None:
    sa = a.state_dict() if isinstance(a, nn.Module) else a
    sb = b.state_dict() if isinstance(b, nn.Module) else b
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def results_equal(a: TrainResult, b: TrainResult) -> None:
    assert a.best_metrics == b.best_metrics
    assert (a.best_epoch, a.epochs_run, a.stopped_early) == (b.best_epoch, b.epochs_run,
                                                            b.stopped_early)
    cols = [c for c in a.history.columns if "seconds" not in c and c != "samples_per_s"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols])


class Kill(Exception):
    pass


def kill_at(epoch: int, step: int) -> Any:
    def hook(e: int, s: int) -> None:
        if (e, s) == (epoch, step):
            raise Kill

    return hook


@pytest.mark.parametrize("loss,objective", [("bce", "prefix"), ("ce", "causal")])
def test_two_runs_same_seed_identical(tmp_path: Path, loss: str, objective: str) -> None:
    cfg = config(epochs=2, loss=loss, objective=objective)
    m1, r1 = run(tmp_path / "a", cfg)
    m2, r2 = run(tmp_path / "b", cfg)
    assert_same_weights(m1, m2)
    results_equal(r1, r2)
    last1, last2 = newest_checkpoint(tmp_path / "a"), newest_checkpoint(tmp_path / "b")
    assert_same_weights(last1["model"], last2["model"])


@pytest.mark.parametrize("kill", [(3, 2), (1, 1), (2, 7)])
def test_resume_after_kill_is_bit_identical(tmp_path: Path, kill: tuple[int, int]) -> None:
    cfg = config(epochs=4)
    reference, ref_result = run(tmp_path / "ref", cfg)
    with pytest.raises(Kill):
        run(tmp_path / "killed", cfg, on_step=kill_at(*kill))
    resumed, result = run(tmp_path / "killed", cfg, model=fresh_model(seed=99))
    assert result.resumed_from_epoch == kill[0] - 1
    assert_same_weights(reference, resumed)  # best weights
    results_equal(ref_result, result)
    last_ref, last_res = newest_checkpoint(tmp_path / "ref"), newest_checkpoint(tmp_path / "killed")
    assert_same_weights(last_ref["model"], last_res["model"])  # final weights
    assert torch.equal(last_ref["rng"]["torch"], last_res["rng"]["torch"])
    history = pd.read_parquet(tmp_path / "killed" / "hist.pq")
    assert history["epoch"].tolist() == [1, 2, 3, 4]


def test_kill_between_best_and_last_checkpoint(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """best-full.pt of epoch 2 written, then killed before epoch-0002.pt: epoch 2 is redone
    identically (best-full.pt, ahead of the checkpoint resumed, is rebuilt from epoch 1's)."""
    cfg = config(epochs=3)
    reference, ref_result = run(tmp_path / "ref", cfg)
    real_save = checkpoint.save_checkpoint
    saves: list[str] = []

    def flaky_save(obj: Any, path: Any) -> None:
        saves.append(Path(path).name)
        if Path(path).name == "epoch-0002.pt":
            raise Kill
        real_save(obj, path)

    monkeypatch.setattr(checkpoint, "save_checkpoint", flaky_save)
    with pytest.raises(Kill):
        run(tmp_path / "killed", cfg)
    assert saves[-2:] == ["best-full.pt", "epoch-0002.pt"]  # epoch 2 improved: on disk
    monkeypatch.setattr(checkpoint, "save_checkpoint", real_save)
    resumed, result = run(tmp_path / "killed", cfg, model=fresh_model(seed=3))
    assert result.resumed_from_epoch == 1
    assert_same_weights(reference, resumed)
    results_equal(ref_result, result)


def test_rerun_of_finished_training_returns_same_result(tmp_path: Path) -> None:
    cfg = config(epochs=2)
    model, first = run(tmp_path, cfg)
    again_model, again = run(tmp_path, cfg, model=fresh_model(seed=5))
    assert again.resumed_from_epoch == 2 and again.epochs_run == 2
    assert_same_weights(model, again_model)
    results_equal(first, again)


def test_early_stopping_keeps_best(tmp_path: Path) -> None:
    scores = iter([0.1, 0.3, 0.2, 0.3, 0.25, 0.9, 0.9])
    snapshots: list[dict[str, torch.Tensor]] = []

    def scripted(model: nn.Module) -> dict[str, dict[str, float]]:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"full": {"mrr": next(scores)}}

    model, result = run(tmp_path, config(epochs=20, patience=3), validate=scripted)
    assert result.stopped_early and result.epochs_run == 5
    assert result.best_epoch == 2 and result.best_metrics == {"mrr": 0.3}
    assert_same_weights(model, snapshots[1])
    state, meta = load_best(result.primary.checkpoint)
    assert meta["epoch"] == 2 and meta["metrics"] == {"mrr": 0.3}
    assert_same_weights(state, snapshots[1])
    history = pd.read_parquet(tmp_path / "hist.pq")
    assert history["improved_full"].tolist() == [True, True, False, False, False]
    assert history["val_full_mrr"].tolist() == [0.1, 0.3, 0.2, 0.3, 0.25]


def test_each_protocol_keeps_its_own_best_epoch_and_training_stops_when_all_stall(
        tmp_path: Path) -> None:
    """Two selections: each keeps the best epoch of its own scores, its own best file holds
    that epoch's weights, and training runs until the later one has stalled too."""
    scores = iter([(0.1, 0.5), (0.3, 0.4), (0.2, 0.6), (0.25, 0.3), (0.2, 0.7), (0.1, 0.2),
                   (0.1, 0.2), (0.1, 0.2), (0.1, 0.2)])
    snapshots: list[dict[str, torch.Tensor]] = []

    def scripted(model: nn.Module) -> dict[str, dict[str, float]]:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        full, sampled = next(scores)
        return {"full": {"mrr": full}, "uniform99": {"mrr": sampled}}

    cfg = config(epochs=20, patience=3, val_protocols=("full", "uniform99"))
    model, result = run(tmp_path, cfg, validate=scripted)
    assert {k: s.epoch for k, s in result.selections.items()} == {"full": 2, "uniform99": 5}
    assert result.stopped_early and result.epochs_run == 8  # uniform99 stalls after epoch 8
    assert_same_weights(model, snapshots[1])  # the primary (full) selection
    for name, selected in result.selections.items():
        state, meta = load_best(selected.checkpoint)
        assert meta["epoch"] == selected.epoch and meta["selection"] == name
        assert_same_weights(state, snapshots[selected.epoch - 1])
    history = pd.read_parquet(tmp_path / "hist.pq")
    assert history["best_epoch_uniform99"].tolist() == [1, 1, 3, 3, 5, 5, 5, 5]


def test_a_selection_picks_what_a_run_selecting_on_it_alone_picks(tmp_path: Path) -> None:
    """Validation draws no random number, so adding a second protocol to select under changes
    neither the trajectory nor the first protocol's best epoch and weights."""
    alone_model, alone = run(tmp_path / "alone", config(epochs=3))

    def two(model: nn.Module) -> dict[str, dict[str, float]]:
        metrics = validate(model)["full"]
        return {"full": metrics, "uniform99": {"mrr": 1.0 - metrics["mrr"]}}

    both_model, both = run(tmp_path / "both", config(epochs=3, val_protocols=("full", "uniform99")),
                           validate=two)
    assert both.selections["full"].epoch == alone.best_epoch
    assert_same_weights(alone_model, both_model)


def test_checkpoints_load_weights_only(tmp_path: Path) -> None:
    _, result = run(tmp_path, config(epochs=1))
    folder = result.primary.checkpoint.parent
    assert folder.name == result.config_hash[:12]
    assert epoch_files(folder) == ["epoch-0000.pt", "epoch-0001.pt"]
    for name in ("best-full.pt", "epoch-0001.pt"):
        ckpt = torch.load(folder / name, weights_only=True)
        assert set(TinyRec().state_dict()) == set(ckpt["model"])
    last = torch.load(folder / "epoch-0001.pt", weights_only=True)
    assert {"model", "optimizer", "rng", "state", "config_hash"} <= set(last)
    assert isinstance(last["rng"]["generator"], torch.Tensor)


def test_config_change_starts_fresh_and_changing_back_resumes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    original, first = run(tmp_path / "x", config(epochs=2))
    (old_set,) = checkpoint_sets(tmp_path / "x")
    old_files = file_bytes(old_set)
    changed = config(epochs=2, lr=1e-3)
    with caplog.at_level(logging.INFO):
        model, result = run(tmp_path / "x", changed)
    assert "other configurations' checkpoints kept: " + old_set.name in caplog.text
    assert result.resumed_from_epoch == 0
    fresh, fresh_result = run(tmp_path / "y", changed)
    assert_same_weights(model, fresh)
    results_equal(result, fresh_result)
    assert file_bytes(old_set) == old_files  # the first configuration's set, untouched
    assert len(checkpoint_sets(tmp_path / "x")) == 2
    # changing it back resumes the first run where it ended: no retraining from zero
    back, back_result = run(tmp_path / "x", config(epochs=2), model=fresh_model(seed=4))
    assert back_result.resumed_from_epoch == 2
    assert_same_weights(original, back)
    results_equal(first, back_result)


def test_raising_the_epoch_budget_continues_the_same_run(tmp_path: Path) -> None:
    run(tmp_path / "x", config(epochs=2))
    model, result = run(tmp_path / "x", config(epochs=4))
    assert result.resumed_from_epoch == 2
    straight, straight_result = run(tmp_path / "y", config(epochs=4))
    assert_same_weights(model, straight)
    results_equal(result, straight_result)


def test_lowering_the_epoch_budget_stops_at_it_from_a_kept_checkpoint(tmp_path: Path) -> None:
    run(tmp_path / "x", config(epochs=3))
    (folder,) = checkpoint_sets(tmp_path / "x")
    # a budget at the checkpoint's epoch ends the run where it is
    model, result = run(tmp_path / "x", config(epochs=3, patience=1_000))
    assert result.resumed_from_epoch == 3 and result.epochs_run == 3
    # a budget below it: the trajectory's epoch-2 checkpoint ends the run, equal to a straight one
    model, result = run(tmp_path / "x", config(epochs=2))
    straight, straight_result = run(tmp_path / "y", config(epochs=2))
    assert result.resumed_from_epoch == 2 and result.epochs_run == 2
    assert_same_weights(model, straight)
    results_equal(result, straight_result)
    assert "epoch-0003.pt" in epoch_files(folder)  # nothing deleted: raising it again continues
    _, again = run(tmp_path / "x", config(epochs=3))
    assert again.resumed_from_epoch == 3


def test_training_learns(tmp_path: Path) -> None:
    before = validate(fresh_model().eval())["full"]["mrr"]
    _, result = run(tmp_path, config(epochs=6, lr=1e-2, loss="ce"))
    assert result.best_metrics["mrr"] > before + 0.2
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]


def test_batch_losses_match_naive_formulas() -> None:
    torch.manual_seed(0)
    model = TinyRec().eval()
    batches = TrainingBatches(DATA, "causal", MAX_LEN, negatives=True)
    batch = next(batches.epoch(8, torch.Generator().manual_seed(0)))
    assert batch.negatives is not None
    hidden = model(batch.inputs)
    weight = model.item_embeddings.weight
    ce_terms, bce_terms_pos, bce_terms_neg = [], [], []
    for b in range(len(batch)):
        for j in range(MAX_LEN):
            target = int(batch.targets[b, j])
            if target == 0:
                continue
            logits = weight @ hidden[b, j]
            ce_terms.append(-torch.log_softmax(logits, 0)[target])
            bce_terms_pos.append(-F.logsigmoid(logits[target]))
            bce_terms_neg.append(-F.logsigmoid(-logits[int(batch.negatives[b, j])]))
    with torch.no_grad():
        ce = batch_loss(model, batch, "ce")
        bce = batch_loss(model, batch, "bce")
    torch.testing.assert_close(ce, torch.stack(ce_terms).mean())
    torch.testing.assert_close(bce, torch.stack(bce_terms_pos).mean()
                               + torch.stack(bce_terms_neg).mean())
    prefix = Batch(batch.inputs, batch.targets[:, -1], batch.negatives[:, -1])
    with torch.no_grad():
        last = hidden[:, -1]
        expect = F.cross_entropy(last @ weight.T, prefix.targets)
        torch.testing.assert_close(batch_loss(model, prefix, "ce"), expect)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="training.loss"):
        TrainConfig(loss="mse")
    with pytest.raises(ValueError, match="training.objective"):
        TrainConfig(objective="all")
    with pytest.raises(ValueError, match="training.val_protocols"):
        TrainConfig(val_protocols=("full", "full"))
    cfg = config()
    assert dataclasses.replace(cfg, progress=True).resume_key() == cfg.resume_key()
    assert dataclasses.replace(cfg, val_protocols=("full", "pop100")).resume_key() \
        != cfg.resume_key()


def test_smoke_with_real_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("fmlp", NUM_ITEMS, max_len=MAX_LEN)
    result = train(model, DATA, config(epochs=1), checkpoint_dir=tmp_path, validate=validate)
    assert result.epochs_run == 1 and 0 < result.best_metrics["mrr"] <= 1


def test_the_claimed_device_is_placement_not_configuration():
    """A job resumed on another GPU of the same kind continues its checkpoint."""
    auto = TrainConfig(device="auto")
    assert TrainConfig(device="auto", placement="cuda:1").resume_key() == auto.resume_key()
    assert TrainConfig(device="cpu").resume_key() != auto.resume_key()


# -- Damaged checkpoints and failed reruns -----------------------------------------------------


def test_truncated_newest_checkpoint_resumes_from_the_previous_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Killed in epoch 4 with epoch-0003.pt damaged: it is set aside, epoch 2 resumed, and the
    run ends bit for bit where an uninterrupted one ends."""
    cfg = config(epochs=4)
    reference, ref_result = run(tmp_path / "ref", cfg)
    with pytest.raises(Kill):
        run(tmp_path / "killed", cfg, on_step=kill_at(4, 1))
    (folder,) = checkpoint_sets(tmp_path / "killed")
    truncate(folder / "epoch-0003.pt")
    with caplog.at_level(logging.INFO):
        resumed, result = run(tmp_path / "killed", cfg, model=fresh_model(seed=99))
    assert f"{folder / 'epoch-0003.pt'}: damaged checkpoint" in caplog.text
    assert (folder / "epoch-0003.pt.damaged").stat().st_size == 5_000  # kept, not deleted
    assert result.resumed_from_epoch == 2
    assert_same_weights(reference, resumed)
    results_equal(ref_result, result)
    assert_same_weights(newest_checkpoint(tmp_path / "ref")["model"],
                        load_checkpoint(folder / "epoch-0004.pt")["model"])


def test_a_flipped_byte_is_caught_and_best_rebuilt(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A byte flipped inside best-full.pt's weights still unpickles: the CRC check catches it,
    and the file is rebuilt from the best epoch's own checkpoint."""
    cfg = config(epochs=2)
    reference, ref_result = run(tmp_path / "ref", cfg)
    with pytest.raises(Kill):
        run(tmp_path / "killed", cfg, on_step=kill_at(2, 1))
    (folder,) = checkpoint_sets(tmp_path / "killed")
    data = bytearray((folder / "best-full.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "best-full.pt").write_bytes(bytes(data))
    with caplog.at_level(logging.INFO):
        resumed, result = run(tmp_path / "killed", cfg, model=fresh_model(seed=99))
    assert "fails its CRC-32" in caplog.text and (folder / "best-full.pt.damaged").exists()
    assert result.resumed_from_epoch == 1
    assert_same_weights(reference, resumed)
    results_equal(ref_result, result)


def test_all_checkpoints_damaged_start_afresh_naming_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(epochs=3)
    reference, ref_result = run(tmp_path / "ref", cfg)
    run(tmp_path / "x", cfg)
    (folder,) = checkpoint_sets(tmp_path / "x")
    damaged = epoch_files(folder)
    assert damaged == ["epoch-0001.pt", "epoch-0002.pt", "epoch-0003.pt"]
    for name in damaged:
        truncate(folder / name, 100)
    with caplog.at_level(logging.INFO):
        model, result = run(tmp_path / "x", cfg)
    for name in damaged:
        assert f"{folder / name}: damaged checkpoint" in caplog.text
        assert (folder / f"{name}.damaged").read_bytes() != b""
    assert f"none of the 3 checkpoints in {folder} can be resumed" in caplog.text
    assert result.resumed_from_epoch == 0
    assert_same_weights(reference, model)
    results_equal(ref_result, result)


def test_a_failing_rerun_leaves_every_checkpoint_in_place(tmp_path: Path) -> None:
    """A rerun with a val_metric validation does not compute fails, deleting nothing."""
    run(tmp_path, config(epochs=2))
    before = file_bytes(tmp_path / "ckpt")
    with pytest.raises(ConfigError, match="training.val_metric: 'hr@20'"):
        run(tmp_path, config(epochs=2, val_metric="hr@20"))
    after = file_bytes(tmp_path / "ckpt")
    assert {name: after[name] for name in before} == before


def test_kept_checkpoints_are_the_newest_and_the_best_epochs_they_name(tmp_path: Path) -> None:
    _, result = run(tmp_path, config(epochs=6),
                    validate=scripted_mrr(0.1, 0.5, 0.2, 0.3, 0.25, 0.2, 0.9))
    assert result.best_epoch == 2
    (folder,) = checkpoint_sets(tmp_path)
    assert epoch_files(folder) == ["epoch-0002.pt", "epoch-0004.pt", "epoch-0005.pt",
                                   "epoch-0006.pt"]
    assert load_best(folder / "best-full.pt")[1]["epoch"] == 2


def test_load_checkpoint_names_a_damaged_file(tmp_path: Path) -> None:
    run(tmp_path, config(epochs=1))
    (folder,) = checkpoint_sets(tmp_path)
    truncate(folder / "epoch-0001.pt")
    with pytest.raises(CheckpointError, match=r"epoch-0001\.pt: damaged checkpoint"):
        load_checkpoint(folder / "epoch-0001.pt")


def test_text_dim_follows_the_embeddings_file() -> None:
    from hybridrec.jobs.train import with_text_dim
    from hybridrec.training.settings import ModelSettings

    settings = ModelSettings("m2rec", {"hidden_size": 16}, {})
    assert with_text_dim(settings, 64, "e.parquet").architecture == {"hidden_size": 16,
                                                                     "text_dim": 64}
    agreed = ModelSettings("m2rec", {"text_dim": 64}, {})
    assert with_text_dim(agreed, 64, "e.parquet").architecture["text_dim"] == 64
    with pytest.raises(ConfigError, match=r"models.m2rec.text_dim: 384, but e.parquet holds 64"):
        with_text_dim(ModelSettings("m2rec", {"text_dim": 384}, {}), 64, "e.parquet")
