"""TrainConfig: every setting of the training loop, checked on construction, and the part of it
that identifies a checkpoint (the resume key)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hybridrec.errors import ConfigError
from hybridrec.training.batches import OBJECTIVES

LOSSES: tuple[str, ...] = ("ce", "bce")
# Fields that change neither the weights nor the metrics: left out of the resume hash.
# ``placement`` is which device of the configured kind a job claimed (cuda:1 rather than auto);
# the device type is hashed on its own, so a resumed job may land on another GPU.
_COSMETIC_FIELDS = frozenset({"log_every", "progress", "placement"})
# Budgets only decide where the same trajectory stops, so a checkpoint stays valid when they
# change: raising one continues the run, lowering one ends it at the new limit.
_BUDGET_FIELDS = frozenset({"epochs", "patience"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything the loop needs; defaults are FMLP-Rec's official Beauty settings.

    ``val_protocols`` names the selections: the protocols validation ranks under, the first the
    primary one (``evaluation.protocol``). Each keeps its own best epoch by ``val_metric`` (a key
    of the metrics the ``validate`` callable returns per protocol; higher is better), and
    training stops once every one of them has gone ``patience`` epochs without a gain.
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
    val_protocols: tuple[str, ...] = ("uniform99",)
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
            "val_protocols": len(self.val_protocols) >= 1
            and len(set(self.val_protocols)) == len(self.val_protocols),
            "num_threads": self.num_threads is None or self.num_threads >= 1,
            "eval_batch_size": self.eval_batch_size >= 1,
            "grad_clip": self.grad_clip is None or self.grad_clip > 0,
            "log_every": self.log_every >= 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"training.{key}: invalid value {getattr(self, key)!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "val_protocols", tuple(self.val_protocols))

    @property
    def primary_protocol(self) -> str:
        """The selection whose best epoch the trained model holds (``evaluation.protocol``)."""
        return self.val_protocols[0]

    def resume_key(self) -> dict[str, Any]:
        """The fields hashed into a checkpoint (all but the cosmetic and the budget ones)."""
        skip = _COSMETIC_FIELDS | _BUDGET_FIELDS
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
