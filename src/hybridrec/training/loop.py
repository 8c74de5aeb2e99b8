"""The training loop: Adam, per-epoch validation, early stopping, exact resume after a kill.

One loop serves both models. ``loss="ce"`` is LinRec's official objective (softmax cross-entropy
over every item, logits ``hidden @ item_embeddings.weight.T``; like RecBole, the padding column 0
stays in the softmax); ``loss="bce"`` is FMLP-Rec's (binary cross-entropy of the next item against
one sampled negative, written with ``softplus`` instead of the official ``log(sigmoid + 1e-24)``
for numerical stability). ``objective`` picks the samples (see :mod:`hybridrec.training.batches`).

Resume contract: after every epoch ``checkpoint_dir/last.pt`` holds the model, the optimizer, the
early-stopping state, the history rows and every RNG state (global torch, CUDA, numpy, Python and
the batch generator), written atomically. A fresh run writes an epoch-0 checkpoint before its first
step. A run killed at any moment and started again resumes from the last completed epoch (a
partial epoch is redone) and, on the CPU, ends bit for bit where an uninterrupted run ends.
A checkpoint whose config hash differs (any result-affecting field of :class:`TrainConfig`, the
model's class and parameter shapes, ``model_spec``, the data fingerprint, the device type) is not
resumed: the loop logs a warning, deletes the stale ``last.pt``/``best.pt`` and starts fresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from hybridrec.cpu import available_cores
from hybridrec.errors import ConfigError
from hybridrec.io import write_parquet
from hybridrec.training.batches import OBJECTIVES, Batch, Sequences, TrainingBatches
from hybridrec.training.checkpoint import (
    FORMAT_VERSION,
    capture_rng_state,
    config_hash,
    load_checkpoint,
    model_signature,
    restore_rng_state,
    save_checkpoint,
)
from hybridrec.training.trimming import states_at_targets

LOSSES: tuple[str, ...] = ("ce", "bce")
# Fields that change neither the weights nor the metrics: left out of the resume hash.
# ``placement`` is which device of the configured kind a job claimed (cuda:1 rather than auto);
# the device type is hashed on its own, so a resumed job may land on another GPU.
_COSMETIC_FIELDS = frozenset({"log_every", "progress", "placement"})
# Budgets only decide where the same trajectory stops, so a checkpoint stays valid when they
# change: raising one continues the run, lowering one ends it at the new limit.
_BUDGET_FIELDS = frozenset({"epochs", "patience"})

Validate = Callable[[nn.Module], Mapping[str, float]]
StepHook = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """Everything the loop needs; defaults are FMLP-Rec's official Beauty settings.

    ``val_metric`` is a key of the dict the ``validate`` callable returns (higher is better);
    ``val_protocol`` only names the candidates that callable uses (recorded, hashed, not read).
    ``num_threads=None`` means every core this process may use (CPU threads; the value hashed
    for resume is the configured one, not the resolved one). It deliberately ignores the
    ``OMP_NUM_THREADS`` Snakemake sets from a job's reserved cores: CPU sums can depend on the
    thread count, and results must not depend on ``--cores``. ``bf16``
    autocasts the forward pass to bfloat16 on CUDA and is ignored on the CPU. ``log_every`` > 0
    logs the loss every that many steps (one device sync each); ``progress`` shows a tqdm bar
    when stderr is a terminal. The optimiser is Adam (fused kernel on CPU and CUDA).
    """

    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    loss: str = "bce"
    objective: str = "prefix"
    patience: int = 10
    val_metric: str = "mrr"
    val_protocol: str = "uniform99"
    seed: int = 42
    device: str = "auto"
    placement: str | None = None
    bf16: bool = False
    num_threads: int | None = None
    eval_batch_size: int = 1024
    grad_clip: float | None = None
    log_every: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "betas": len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "weight_decay": self.weight_decay >= 0,
            "loss": self.loss in LOSSES,
            "objective": self.objective in OBJECTIVES,
            "patience": self.patience >= 1,
            "num_threads": self.num_threads is None or self.num_threads >= 1,
            "eval_batch_size": self.eval_batch_size >= 1,
            "grad_clip": self.grad_clip is None or self.grad_clip > 0,
            "log_every": self.log_every >= 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"training.{key}: invalid value {getattr(self, key)!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    @classmethod
    def fmlp_official(cls, **overrides: Any) -> TrainConfig:
        """FMLP-Rec on Beauty: BCE vs one negative, batch 256, <= 200 epochs, stop on MRR."""
        return cls(**{**dict(epochs=200, batch_size=256, loss="bce", objective="prefix",
                             patience=10, val_metric="mrr", val_protocol="uniform99"),
                      **overrides})

    @classmethod
    def linrec_official(cls, **overrides: Any) -> TrainConfig:
        """LinRec (RecBole) on ML-1M: CE over all items, batch 2048, <= 100 epochs, NDCG@10."""
        return cls(**{**dict(epochs=100, batch_size=2048, loss="ce", objective="prefix",
                             patience=10, val_metric="ndcg@10", val_protocol="pop100"),
                      **overrides})

    def resume_key(self) -> dict[str, Any]:
        """The fields hashed into a checkpoint (all but the cosmetic and the budget ones)."""
        skip = _COSMETIC_FIELDS | _BUDGET_FIELDS
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


@dataclass
class TrainResult:
    """Outcome of :func:`train`; ``seconds`` sums every epoch's wall time across resumes."""

    best_metrics: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds: float
    stopped_early: bool
    resumed_from_epoch: int
    best_checkpoint: Path
    config_hash: str
    history: pd.DataFrame = field(repr=False)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; anything else as ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global RNG is what we seed)
    random.seed(seed)


def batch_loss(model: nn.Module, batch: Batch, loss: str, *, trim_padding: bool = True
               ) -> torch.Tensor:
    """Mean training loss of ``batch`` (``prefix``: last position; ``causal``: every target).

    ``trim_padding`` computes a model that ignores leading padding on trimmed windows in length
    groups (:mod:`hybridrec.training.trimming`): the same loss up to summation order and the
    dropout stream; ``False`` runs every row on the full window.
    """
    h, targets, negatives = states_at_targets(model, batch, trim_padding)  # (M, d), (M,), ...
    embeddings = cast(nn.Embedding, model.item_embeddings)
    if loss == "ce":
        logits = h @ embeddings.weight.T  # (M, I + 1)
        return F.cross_entropy(logits.float(), targets)
    if negatives is None:
        raise ValueError("loss 'bce' needs a batch with negatives")
    pos = (h * embeddings(targets)).sum(-1).float()  # (M,)
    neg = (h * embeddings(negatives)).sum(-1).float()  # (M,)
    return F.softplus(-pos).mean() + F.softplus(neg).mean()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, *, loss: str,
               grad_clip: float | None = None, bf16: bool = False, trim_padding: bool = True
               ) -> torch.Tensor:
    """One optimiser step on a batch already on the model's device; returns the detached loss."""
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())
    with autocast:
        value = batch_loss(model, batch, loss, trim_padding=trim_padding)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return value.detach()


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (coupled L2 ``weight_decay``, as both official implementations use).

    The fused kernel (CPU and CUDA) when every parameter is a float tensor there: same update
    rule, one pass over each parameter instead of a dozen element-wise ops.
    """
    params = list(model.parameters())
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    return torch.optim.Adam(params, lr=config.lr, betas=config.betas,
                            weight_decay=config.weight_decay, fused=fused or None)


@dataclass
class _State:
    epoch: int = 0
    best_metric: float = -math.inf
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    seconds: float = 0.0
    finished: bool = False
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_plain(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _progress(total: int, enabled: bool, epoch: int) -> Any:
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}", leave=False, unit="batch")


def _iterate(batches: TrainingBatches, config: TrainConfig, generator: torch.Generator,
             device: torch.device) -> Iterator[Batch]:
    non_blocking = device.type == "cuda"
    for batch in batches.epoch(config.batch_size, generator):
        yield batch.to(device, non_blocking=non_blocking)


def train(model: nn.Module, data: Sequences, config: TrainConfig, *,
          checkpoint_dir: str | os.PathLike[str],
          history_path: str | os.PathLike[str] | None = None,
          log: logging.Logger | None = None,
          validate: Validate | None = None,
          model_spec: Mapping[str, Any] | None = None,
          on_step: StepHook | None = None,
          resume: bool = True) -> TrainResult:
    """Train ``model`` on ``data`` (the users' training sequences) and keep the best epoch.

    ``validate(model)`` runs after every epoch (model in eval mode, under ``torch.no_grad``) and
    returns metrics; ``config.val_metric`` among them drives early stopping (strict gain resets
    the patience counter) and the best checkpoint ``checkpoint_dir/best.pt``. Without
    ``validate`` every epoch counts as the best so far and training runs ``config.epochs``.
    ``model_spec`` (e.g. the model's name and hyperparameters) joins the resume hash.
    ``on_step(epoch, step)`` is called after every optimiser step (tests use it to simulate a kill).
    On return the model holds the best epoch's weights.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads or available_cores())
    try:
        return _train(model, data, config, checkpoint_dir=Path(checkpoint_dir),
                      history_path=history_path, log=log or logging.getLogger(__name__),
                      validate=validate, model_spec=model_spec, on_step=on_step, resume=resume)
    finally:
        torch.set_num_threads(previous_threads)


def _stop_epoch(history: Sequence[Mapping[str, Any]], config: TrainConfig) -> int | None:
    """The epoch at which a run with this history stops under ``config``'s budgets, if any."""
    bad = 0
    for row in history:
        bad = 0 if row["improved"] else bad + 1
        if bad >= config.patience or row["epoch"] >= config.epochs:
            return int(row["epoch"])
    return None


def _train(model: nn.Module, data: Sequences, config: TrainConfig, *, checkpoint_dir: Path,
           history_path: str | os.PathLike[str] | None, log: logging.Logger,
           validate: Validate | None, model_spec: Mapping[str, Any] | None,
           on_step: StepHook | None, resume: bool) -> TrainResult:
    device = resolve_device(config.placement or config.device)
    model.to(device)
    max_len = int(cast(int, model.max_len))
    batches = TrainingBatches(data, config.objective, max_len, negatives=config.loss == "bce")
    if len(batches) == 0:
        raise ValueError("no training sample: every sequence has fewer than two items")
    optimizer = make_optimizer(model, config)
    generator = torch.Generator()
    digest = config_hash(config.resume_key(), model_signature(model), dict(model_spec or {}),
                         data.fingerprint(), device.type, FORMAT_VERSION)

    last_path, best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
    state = _State()
    resumed_from = 0
    ckpt = load_checkpoint(last_path) if resume and last_path.exists() else None
    if ckpt is not None and ckpt.get("config_hash") != digest:
        log.warning("%s was written for another configuration (hash %.12s, now %.12s): "
                    "starting afresh", last_path, ckpt.get("config_hash"), digest)
        ckpt = None
        last_path.unlink(missing_ok=True)
        best_path.unlink(missing_ok=True)
    if ckpt is not None and (stop := _stop_epoch(ckpt["state"]["history"], config)) is not None \
            and stop < ckpt["state"]["epoch"]:
        log.warning("%s has trained past where epochs=%d, patience=%d stop (epoch %d): "
                    "starting afresh", last_path, config.epochs, config.patience, stop)
        ckpt = None
        last_path.unlink(missing_ok=True)
        best_path.unlink(missing_ok=True)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = _State(**ckpt["state"])
        restore_rng_state(ckpt["rng"], generator)
        resumed_from = state.epoch
        state.stopped_early = state.bad_epochs >= config.patience  # under the current budget
        state.finished = state.stopped_early or state.epoch >= config.epochs
        log.info("resuming from %s after epoch %d", last_path, state.epoch)
    else:
        best_path.unlink(missing_ok=True)
        seed_everything(config.seed)
        generator.manual_seed(config.seed)

    def checkpoint() -> None:
        save_checkpoint({
            "format_version": FORMAT_VERSION, "config_hash": digest,
            "config": dataclasses.asdict(config), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "state": state.to_plain(),
            "rng": capture_rng_state(generator),
        }, last_path)

    def write_history() -> None:
        if history_path is not None:
            write_parquet(pd.DataFrame(state.history), history_path)

    if ckpt is None:
        checkpoint()  # epoch 0: a kill during the first epoch restarts from these weights
    write_history()

    bf16 = config.bf16 and device.type == "cuda"
    steps = batches.num_batches(config.batch_size)
    model.train()
    while not state.finished and state.epoch < config.epochs:
        epoch = state.epoch + 1
        started = time.perf_counter()
        bar = _progress(steps, config.progress, epoch)
        total = torch.zeros((), device=device)
        for step, batch in enumerate(_iterate(batches, config, generator, device), start=1):
            value = train_step(model, optimizer, batch, loss=config.loss,
                               grad_clip=config.grad_clip, bf16=bf16)
            total += value * len(batch)
            if config.log_every and step % config.log_every == 0:
                log.info("epoch %d step %d/%d loss %.5f", epoch, step, steps, value.item())
            if bar is not None:
                bar.update()
            if on_step is not None:
                on_step(epoch, step)
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - started
        train_loss = total.item() / len(batches)

        metrics: dict[str, float] = {}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in validate(model).items()}
            model.train()
            if config.val_metric not in metrics:
                raise ConfigError(f"training.val_metric: {config.val_metric!r} is not among "
                                  f"the validation metrics {sorted(metrics)}")
            score = metrics[config.val_metric]
            improved = score > state.best_metric
        else:
            score, improved = math.nan, True
        if improved:
            state.best_metric = score if validate is not None else state.best_metric
            state.best_epoch, state.best_metrics, state.bad_epochs = epoch, metrics, 0
        else:
            state.bad_epochs += 1
        seconds = time.perf_counter() - started
        state.epoch = epoch
        state.seconds += seconds
        state.history.append({
            "epoch": epoch, "loss": train_loss, "seconds": seconds,
            "train_seconds": train_seconds, "samples_per_s": len(batches) / train_seconds,
            "improved": improved, "best_epoch": state.best_epoch,
            **{f"val_{k}": v for k, v in metrics.items()},
        })
        if state.bad_epochs >= config.patience:
            state.finished = state.stopped_early = True
        elif epoch >= config.epochs:
            state.finished = True
        if improved:  # before last.pt: a kill in between redoes this epoch identically
            save_checkpoint({"format_version": FORMAT_VERSION, "config_hash": digest,
                             "epoch": epoch, "metrics": metrics, "model": model.state_dict()},
                            best_path)
        checkpoint()
        write_history()
        log.info("epoch %d/%d | loss %.5f | %s | best epoch %d | %.1f s, %.0f samples/s",
                 epoch, config.epochs, train_loss,
                 " ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "no validation",
                 state.best_epoch, seconds, len(batches) / train_seconds)
        if not math.isfinite(train_loss):
            log.warning("epoch %d: the training loss is %s", epoch, train_loss)
        if state.stopped_early:
            log.info("early stop: %d epochs without %s gain", state.bad_epochs, config.val_metric)

    best = load_checkpoint(best_path)
    if best.get("config_hash") != digest:
        raise RuntimeError(f"{best_path} belongs to another configuration")
    model.load_state_dict(best["model"])
    return TrainResult(
        best_metrics=dict(state.best_metrics), best_epoch=state.best_epoch,
        epochs_run=state.epoch, seconds=state.seconds, stopped_early=state.stopped_early,
        resumed_from_epoch=resumed_from, best_checkpoint=best_path, config_hash=digest,
        history=pd.DataFrame(state.history))
