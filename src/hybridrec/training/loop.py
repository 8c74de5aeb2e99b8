"""The training loop: Adam, per-epoch validation, early stopping, exact resume after a kill.

One loop serves every model. ``loss="ce"`` is LinRec's official objective (softmax cross-entropy
over every item, logits ``hidden @ item_embeddings.weight.T``; like RecBole, the padding column 0
stays in the softmax); ``loss="bce"`` is FMLP-Rec's (binary cross-entropy of the next item against
one sampled negative, written with ``softplus`` instead of the official ``log(sigmoid + 1e-24)``
for numerical stability). ``objective`` picks the samples (see :mod:`hybridrec.training.batches`).

Resume contract: checkpoints live in ``checkpoint_dir/<config hash[:12]>/`` (see
:class:`hybridrec.training.checkpoint.CheckpointSet`); the hash covers every result-affecting
field of :class:`TrainConfig`, the model's class and parameter shapes, ``model_spec``, the data
fingerprint and the device type, so a changed setting starts a new set beside the old one and
changing it back resumes the old one. After every epoch ``epoch-NNNN.pt`` holds the model, the
optimizer, the early-stopping state, the history rows and every RNG state (global torch, CUDA,
numpy, Python and the batch generator), written atomically; a fresh run writes ``epoch-0000.pt``
before its first step. A run killed at any moment and started again resumes from the newest
intact checkpoint (a partial epoch is redone) and, on the CPU, ends bit for bit where an
uninterrupted run ends. Nothing of another configuration is ever deleted, and a damaged file is
moved aside, not deleted.

Selections: validation ranks under each protocol of ``config.val_protocols`` after every epoch,
and each protocol keeps its own best epoch (``best-<protocol>.pt``) with its own patience
counter. Training stops when every protocol has gone ``patience`` epochs without a gain. Since
validation never changes the training trajectory (it draws no random number), each protocol's
best epoch is exactly the one a run early-stopped on that protocol alone would have kept, so one
run serves every protocol, each model selected under the protocol it is evaluated under.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from hybridrec.cpu import available_cores
from hybridrec.devices import resolve_device
from hybridrec.errors import ConfigError
from hybridrec.io import write_parquet
from hybridrec.training.batches import Batch, Sequences, TrainingBatches
from hybridrec.training.checkpoint import (
    FORMAT_VERSION,
    CheckpointSet,
    config_hash,
    model_signature,
)
from hybridrec.training.config import TrainConfig
from hybridrec.training.seeding import capture_rng_state, restore_rng_state, seed_everything
from hybridrec.training.trimming import states_at_targets

Validate = Callable[[nn.Module], Mapping[str, Mapping[str, float]]]
"""Validation metrics per selection: ``{protocol: {metric: value}}``, one per val_protocols."""
StepHook = Callable[[int, int], None]


@dataclass(frozen=True)
class SelectedEpoch:
    """The best epoch under one selection, its validation metrics and its weights' file."""

    epoch: int
    metrics: dict[str, float]
    checkpoint: Path


@dataclass
class TrainResult:
    """Outcome of :func:`train`; ``seconds`` sums every epoch's wall time across resumes.

    ``selections`` maps each validation protocol to its best epoch, the primary one first.
    """

    selections: dict[str, SelectedEpoch]
    epochs_run: int
    seconds: float
    stopped_early: bool
    resumed_from_epoch: int
    config_hash: str
    history: pd.DataFrame = field(repr=False)

    @property
    def primary(self) -> SelectedEpoch:
        """The primary protocol's selection: the weights the trained model holds."""
        return next(iter(self.selections.values()))

    @property
    def best_epoch(self) -> int:
        return self.primary.epoch

    @property
    def best_metrics(self) -> dict[str, float]:
        return self.primary.metrics


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
class _Best:
    """Early stopping under one selection: the best score, its epoch and metrics, the patience."""

    metric: float = -math.inf
    epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0


@dataclass
class _State:
    """Where training stands after ``epoch``: each selection's best, wall time, the history."""

    selections: dict[str, _Best]
    epoch: int = 0
    seconds: float = 0.0
    finished: bool = False
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def fresh(cls, config: TrainConfig) -> _State:
        return cls({name: _Best() for name in config.val_protocols})

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any]) -> _State:
        values = dict(plain)
        values["selections"] = {k: _Best(**v) for k, v in values["selections"].items()}
        return cls(**values)

    def to_plain(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def stalled(self, patience: int) -> bool:
        """Every selection has gone ``patience`` epochs without a gain."""
        return all(best.bad_epochs >= patience for best in self.selections.values())


@dataclass
class _Run:
    """One call of :func:`train`: what every step reads, and the state it advances."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # batch order and negative samples
    batches: TrainingBatches
    config: TrainConfig
    device: torch.device
    checkpoints: CheckpointSet
    log: logging.Logger
    state: _State


def train(model: nn.Module, data: Sequences, config: TrainConfig, *,
          checkpoint_dir: str | os.PathLike[str],
          history_path: str | os.PathLike[str] | None = None,
          log: logging.Logger | None = None,
          validate: Validate | None = None,
          model_spec: Mapping[str, Any] | None = None,
          on_step: StepHook | None = None) -> TrainResult:
    """Train ``model`` on ``data`` (the users' training sequences) and keep each selection's best
    epoch.

    ``validate(model)`` runs after every epoch (model in eval mode, under ``torch.no_grad``) and
    returns metrics per protocol of ``config.val_protocols``; ``config.val_metric`` drives each
    protocol's early stopping (a strict gain resets its patience counter) and its best
    checkpoint ``best-<protocol>.pt``. Without ``validate`` every epoch counts as the best so far
    and training runs ``config.epochs``. ``model_spec`` (e.g. the
    model's name and hyperparameters) joins the resume hash. ``on_step(epoch, step)`` is called
    after every optimiser step (the pipeline bounds the heap's memory with it; tests use it to
    simulate a kill). On return the model holds the
    primary protocol's best epoch's weights.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads or available_cores())
    try:
        run = _prepare(model, data, config, Path(checkpoint_dir), model_spec,
                       log or logging.getLogger(__name__))
        return _train(run, history_path, validate, on_step)
    finally:
        torch.set_num_threads(previous_threads)


def _prepare(model: nn.Module, data: Sequences, config: TrainConfig, checkpoint_dir: Path,
             model_spec: Mapping[str, Any] | None, log: logging.Logger) -> _Run:
    """Model on its device, the batches, the optimiser, and this configuration's checkpoints."""
    device = resolve_device(config.placement or config.device)
    model.to(device)
    max_len = int(cast(int, model.max_len))
    batches = TrainingBatches(data, config.objective, max_len, negatives=config.loss == "bce")
    if len(batches) == 0:
        raise ValueError("no training sample: every sequence has fewer than two items")
    optimizer = make_optimizer(model, config)
    digest = config_hash(config.resume_key(), model_signature(model), dict(model_spec or {}),
                         data.fingerprint(), device.type, FORMAT_VERSION)
    return _Run(model, optimizer, torch.Generator(), batches, config, device,
                CheckpointSet(checkpoint_dir, digest, log), log, _State.fresh(config))


def _train(run: _Run, history_path: str | os.PathLike[str] | None, validate: Validate | None,
           on_step: StepHook | None) -> TrainResult:
    """Resume or start, then epoch by epoch: train, validate, early-stop, save."""
    resumed_from = _resume(run)
    if resumed_from is None:
        _start(run)
        resumed_from = 0
    _write_history(run.state, history_path)
    run.model.train()
    while not run.state.finished and run.state.epoch < run.config.epochs:
        epoch = run.state.epoch + 1
        started = time.perf_counter()
        loss, train_seconds = _train_epoch(run, epoch, on_step)
        metrics = _validate(run, validate)
        improved = _early_stopping(run.state, run.config, epoch, metrics,
                                   validated=validate is not None)
        _record_epoch(run.state, epoch, loss, metrics, improved, train_seconds,
                      seconds=time.perf_counter() - started, samples=len(run.batches))
        _save(run, improved)
        _write_history(run.state, history_path)
        _log_epoch(run, metrics)

    state, checkpoints = run.state, run.checkpoints
    selections = {name: SelectedEpoch(best.epoch, dict(best.metrics),
                                      checkpoints.best_path(name))
                  for name, best in state.selections.items()}
    primary = run.config.primary_protocol
    run.model.load_state_dict(checkpoints.best_weights(primary, state.selections[primary].epoch))
    return TrainResult(
        selections=selections, epochs_run=state.epoch, seconds=state.seconds,
        stopped_early=state.stopped_early, resumed_from_epoch=resumed_from,
        config_hash=checkpoints.digest, history=pd.DataFrame(state.history))


def _stop_epoch(history: Sequence[Mapping[str, Any]], config: TrainConfig) -> int | None:
    """The epoch at which a run with this history stops under ``config``'s budgets, if any."""
    bad = dict.fromkeys(config.val_protocols, 0)
    for row in history:
        for name in bad:
            bad[name] = 0 if row[f"improved_{name}"] else bad[name] + 1
        if min(bad.values()) >= config.patience or row["epoch"] >= config.epochs:
            return int(row["epoch"])
    return None


def _resume(run: _Run) -> int | None:
    """Restore the newest intact checkpoint this run can continue: the epoch it ends, or None.

    A checkpoint past where the current budgets stop its trajectory is passed over for an
    earlier one of the same run; one whose best epoch's weights are lost, likewise. Says why
    when it returns None.
    """
    config, checkpoints, log = run.config, run.checkpoints, run.log
    candidates = checkpoints.epochs()
    for ckpt in checkpoints.intact():
        state = _State.from_plain(ckpt["state"])
        path = checkpoints.epoch_path(state.epoch)
        stop = _stop_epoch(state.history, config)
        if stop is not None and stop < state.epoch:
            log.info("%s has trained past where epochs=%d, patience=%d stop (epoch %d): "
                     "looking for an earlier checkpoint", path, config.epochs, config.patience,
                     stop)
            continue
        if not checkpoints.ensure_best(ckpt):
            continue
        run.model.load_state_dict(ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        restore_rng_state(ckpt["rng"], run.generator)
        state.stopped_early = state.stalled(config.patience)  # under the current budget
        state.finished = state.stopped_early or state.epoch >= config.epochs
        run.state = state
        log.info("resuming from %s after epoch %d", path, state.epoch)
        return state.epoch
    if candidates:
        log.warning("none of the %d checkpoints in %s can be resumed (see above): starting "
                    "afresh", len(candidates), checkpoints.folder)
    else:
        others = checkpoints.other_configurations()
        log.info("no checkpoint of this configuration in %s: starting afresh%s",
                 checkpoints.folder,
                 f" (other configurations' checkpoints kept: {', '.join(others)})" if others
                 else "")
    return None


def _start(run: _Run) -> None:
    """A fresh run: seed every RNG, then write the epoch-0 checkpoint (a kill in epoch 1
    restarts from these weights)."""
    seed_everything(run.config.seed)
    run.generator.manual_seed(run.config.seed)
    _save_epoch(run)


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


def _train_epoch(run: _Run, epoch: int, on_step: StepHook | None) -> tuple[float, float]:
    """One pass over the batches: the mean training loss and the seconds it took."""
    config, device = run.config, run.device
    bf16 = config.bf16 and device.type == "cuda"
    steps = run.batches.num_batches(config.batch_size)
    started = time.perf_counter()
    bar = _progress(steps, config.progress, epoch)
    total = torch.zeros((), device=device)
    for step, batch in enumerate(_iterate(run.batches, config, run.generator, device), start=1):
        value = train_step(run.model, run.optimizer, batch, loss=config.loss,
                           grad_clip=config.grad_clip, bf16=bf16)
        total += value * len(batch)
        if config.log_every and step % config.log_every == 0:
            run.log.info("epoch %d step %d/%d loss %.5f", epoch, step, steps, value.item())
        if bar is not None:
            bar.update()
        if on_step is not None:
            on_step(epoch, step)
    if bar is not None:
        bar.close()
    return total.item() / len(run.batches), time.perf_counter() - started


def _validate(run: _Run, validate: Validate | None) -> dict[str, dict[str, float]]:
    """``validate(model)`` in eval mode without gradients, checked against the selections;
    {} without a validate callable."""
    if validate is None:
        return {}
    run.model.eval()
    with torch.no_grad():
        metrics = {name: {k: float(v) for k, v in values.items()}
                   for name, values in validate(run.model).items()}
    run.model.train()
    config = run.config
    if sorted(metrics) != sorted(config.val_protocols):
        raise ValueError(f"validation returned metrics for {sorted(metrics)}, expected one set "
                         f"per selection {list(config.val_protocols)}")
    for values in metrics.values():
        if config.val_metric not in values:
            raise ConfigError(f"training.val_metric: {config.val_metric!r} is not among "
                              f"the validation metrics {sorted(values)}")
    return metrics


def _early_stopping(state: _State, config: TrainConfig, epoch: int,
                    metrics: Mapping[str, Mapping[str, float]], *, validated: bool) -> set[str]:
    """Track each selection's best epoch and patience after ``epoch``; the selections it
    improved (every one without validation: the newest epoch is then the best)."""
    improved: set[str] = set()
    for name, best in state.selections.items():
        score = metrics[name][config.val_metric] if validated else math.inf
        if not validated or score > best.metric:
            best.metric = score if validated else best.metric
            best.epoch, best.metrics, best.bad_epochs = epoch, dict(metrics.get(name, {})), 0
            improved.add(name)
        else:
            best.bad_epochs += 1
    if state.stalled(config.patience):
        state.finished = state.stopped_early = True
    elif epoch >= config.epochs:
        state.finished = True
    return improved


def _record_epoch(state: _State, epoch: int, loss: float,
                  metrics: Mapping[str, Mapping[str, float]], improved: set[str],
                  train_seconds: float, *, seconds: float, samples: int) -> None:
    """Advance ``state`` to ``epoch`` and add its history row (``val_<protocol>_<metric>``,
    ``improved_<protocol>``, ``best_epoch_<protocol>`` per selection)."""
    state.epoch = epoch
    state.seconds += seconds
    row: dict[str, Any] = {
        "epoch": epoch, "loss": loss, "seconds": seconds,
        "train_seconds": train_seconds, "samples_per_s": samples / train_seconds,
    }
    for name, best in state.selections.items():
        row[f"improved_{name}"] = name in improved
        row[f"best_epoch_{name}"] = best.epoch
        row.update({f"val_{name}_{k}": v for k, v in metrics.get(name, {}).items()})
    state.history.append(row)


def _save(run: _Run, improved: set[str]) -> None:
    """``best-<selection>.pt`` of each selection the epoch improved, then the epoch's checkpoint
    (in that order: a kill in between redoes the epoch identically and rewrites them)."""
    for name in run.config.val_protocols:
        if name in improved:
            best = run.state.selections[name]
            run.checkpoints.save_best(name, run.model.state_dict(), best.epoch, best.metrics)
    _save_epoch(run)


def _save_epoch(run: _Run) -> None:
    state = run.state
    run.checkpoints.save_epoch({
        "format_version": FORMAT_VERSION, "config_hash": run.checkpoints.digest,
        "config": dataclasses.asdict(run.config), "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(), "state": state.to_plain(),
        "rng": capture_rng_state(run.generator),
    }, state.epoch, {row["epoch"]: [row[f"best_epoch_{name}"] for name in state.selections]
                     for row in state.history})


def _write_history(state: _State, history_path: str | os.PathLike[str] | None) -> None:
    if history_path is not None:
        write_parquet(pd.DataFrame(state.history), history_path)


def _log_epoch(run: _Run, metrics: Mapping[str, Mapping[str, float]]) -> None:
    state, config, row = run.state, run.config, run.state.history[-1]
    validation = " | ".join(  # every metric is in the history file
        f"{name} {config.val_metric} {values[config.val_metric]:.4f} (best epoch "
        f"{state.selections[name].epoch})" for name, values in metrics.items())
    run.log.info("epoch %d/%d | loss %.5f | %s | %.1f s, %.0f samples/s",
                 state.epoch, config.epochs, row["loss"], validation or "no validation",
                 row["seconds"], row["samples_per_s"])
    if not math.isfinite(row["loss"]):
        run.log.warning("epoch %d: the training loss is %s", state.epoch, row["loss"])
    if state.stopped_early:
        run.log.info("early stop: every selection has gone %d epochs or more without %s gain "
                     "(%s)", config.patience, config.val_metric,
                     ", ".join(f"{name} {best.bad_epochs}"
                               for name, best in state.selections.items()))
