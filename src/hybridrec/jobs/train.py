"""The train job: one model on one preprocessed dataset folder, selected under every protocol it
is evaluated under, written as ``model.pt`` (:mod:`hybridrec.models.files`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import torch

from hybridrec import provenance
from hybridrec.codehash import weights_code_hash
from hybridrec.data.store import dataset_files
from hybridrec.devices import resolve_device
from hybridrec.errors import ConfigError, HybridrecError
from hybridrec.evaluation.evaluate import evaluate_protocols, load_eval_split
from hybridrec.heap import ResidentMemoryBound
from hybridrec.models import build_model
from hybridrec.models.base import SequentialRecommender
from hybridrec.models.files import SavedModel, Selection, text_digest, write_model
from hybridrec.training.batches import NegativeSampler, Sequences
from hybridrec.training.checkpoint import load_best
from hybridrec.training.config import TrainConfig
from hybridrec.training.loop import TrainResult, train
from hybridrec.training.settings import ModelSettings

log = logging.getLogger(__name__)


def num_items_of(root: str | Path) -> int:
    """Catalogue size of a dataset folder (rows of item_ids.parquet)."""
    return pq.read_metadata(dataset_files(root)["item_ids"]).num_rows


def train_on_dataset(root: str | Path, settings: ModelSettings, *, seed: int, device: str,
                     placement: str | None = None,
                     bf16: bool, protocols: Sequence[str], eval_batch_size: int,
                     checkpoint_dir: str | Path, history_path: str | Path, threads: int = 0,
                     item_embeddings: str | Path | None = None
                     ) -> tuple[SequentialRecommender, TrainResult, str | None]:
    """Build ``settings.name``, train it on split/train.parquet, early-stop on validation.

    Validation ranks the validation targets under each of ``protocols`` (the same candidates
    every model sees; the first is the primary one) and keeps each protocol's best epoch; the
    returned model holds the primary one's weights. A text-aware model takes its frozen item
    text from ``item_embeddings`` (``results/text/{dataset}/item_embeddings.parquet``); its
    ``text_dim`` is that file's width, and the text's digest (returned last, None without text)
    joins the checkpoint's resume key. After every step,
    :class:`~hybridrec.heap.ResidentMemoryBound` keeps the heap's reused memory from growing
    without bound.
    """
    num_items = num_items_of(root)
    item_text = None
    if item_embeddings is not None:
        from hybridrec.text.embeddings import load_item_embeddings

        item_text = load_item_embeddings(item_embeddings, num_items)  # (I + 1, t)
        settings = with_text_dim(settings, item_text.shape[1], item_embeddings)
    config = TrainConfig(**settings.training, seed=seed, device=device, placement=placement,
                         bf16=bf16,
                         num_threads=threads or None,
                         val_protocols=tuple(protocols), eval_batch_size=eval_batch_size)
    torch.manual_seed(seed)  # the initial weights
    model = build_model(settings.name, num_items, **settings.architecture)
    digest = None
    if item_text is not None:
        model.set_item_text(item_text)
        digest = text_digest(item_text)
    model.to(resolve_device(placement or device))
    train_items = pq.read_table(dataset_files(root)["train"], columns=["items"]).column("items")
    sequences = Sequences.from_arrow(train_items, num_items)
    if config.loss == "bce":
        _check_negatives_exist(sequences, settings.name, root)
    valid = load_eval_split(root, "valid", model.max_len, protocols)

    def validate(m: torch.nn.Module) -> dict[str, dict[str, float]]:
        assert isinstance(m, SequentialRecommender)
        # the metrics come from the target's rank; k only sizes the top-k lists, unused here,
        # and one item (the target, always ranked) exists in any catalogue
        metrics, _ = evaluate_protocols(m, valid, protocols, k=1, batch_size=eval_batch_size)
        return metrics

    log.info("training %s on %s: %d users, %d items, device %s, selected under %s, settings %s",
             settings.name, root, sequences.num_users, num_items, config.device,
             ", ".join(protocols), settings)
    result = train(model, sequences, config, checkpoint_dir=checkpoint_dir,
                   history_path=history_path, log=log, validate=validate,
                   model_spec={"name": settings.name, **settings.architecture,
                               "code": weights_code_hash(settings.name),
                               "item_text": digest},
                   on_step=ResidentMemoryBound())
    return model, result, digest


def with_text_dim(settings: ModelSettings, dim: int, source: str | Path) -> ModelSettings:
    """``settings`` with ``text_dim`` set to the embeddings' width (a configured one must agree)."""
    configured = settings.architecture.get("text_dim")
    if configured is not None and configured != dim:
        raise ConfigError(f"models.{settings.name}.text_dim: {configured}, but {source} holds "
                          f"{dim}-dimensional item embeddings; remove the key (it follows the "
                          "file) or change text.encoder")
    return dataclasses.replace(settings, architecture={**settings.architecture, "text_dim": dim})


def _check_negatives_exist(sequences: Sequences, model: str, root: str | Path) -> None:
    """BCE needs a negative outside each user's training sequence: fail before training if not."""
    covering = NegativeSampler(sequences).users_without_negatives
    if covering:
        raise HybridrecError(
            f"models.{model}.loss: 'bce' trains against a negative drawn from the items outside "
            f"the user's training sequence, but {covering} users of {root} have touched all "
            f"{sequences.num_items} items; use loss 'ce' (models.{model}.loss, or its "
            "per_dataset override) or a larger catalogue")


def save_model(model: SequentialRecommender, settings: ModelSettings, result: TrainResult,
               path: str | Path, item_text: str | None = None) -> None:
    """The trained model as one file (:mod:`hybridrec.models.files`): how to build it, the
    weights of every selection's best epoch and, inside a job, its provenance record."""
    weights = {s.epoch: load_best(s.checkpoint)[0] for s in result.selections.values()}
    saved = SavedModel(
        name=settings.name, num_items=model.num_items,
        architecture={k: v for k, v in dataclasses.asdict(model.config).items()
                      if k != "num_items"},
        training=settings.training, primary=next(iter(result.selections)),
        selections={name: Selection(s.epoch, s.metrics) for name, s in result.selections.items()},
        weights=weights, epochs_run=result.epochs_run, seconds=result.seconds,
        stopped_early=result.stopped_early, item_text=item_text,
        provenance=provenance.record_json())
    write_model(saved, path)
