"""The evaluation protocols, named in one place (docs/contracts.md, "Protocols").

- ``full``: the target against the whole catalogue, the user's history excluded;
- ``uniform99``: the target and 99 negatives drawn uniformly from the items the user never
  touched (FMLP-Rec's protocol);
- ``pop100``: the target and 100 negatives drawn by popularity (LinRec's RecBole protocol);
- ``paper``: not a ranking protocol but a hybrid run's setting: each branch ranked under its own
  paper's protocol (:data:`PAPER_PROTOCOLS`), as the hybrid paper's Table V fused them.
"""

from __future__ import annotations

from dataclasses import dataclass

FULL = "full"


@dataclass(frozen=True)
class Protocol:
    """A sampled-candidate protocol: how many negatives and how they are weighted."""

    name: str
    negatives: int
    by_popularity: bool


SAMPLED_PROTOCOLS = {
    "uniform99": Protocol("uniform99", 99, by_popularity=False),
    "pop100": Protocol("pop100", 100, by_popularity=True),
}
PROTOCOLS: tuple[str, ...] = (FULL, *SAMPLED_PROTOCOLS)
"""Every ranking protocol, full ranking first."""

PAPER = "paper"
# The protocol each model's published figures were computed under (its own paper's code):
# LinRec and SASRec with RecBole's 100 popularity-drawn negatives, FMLP-Rec with 99 uniform ones.
PAPER_PROTOCOLS = {"linrec": "pop100", "sasrec": "pop100", "fmlp": "uniform99"}
HYBRID_PROTOCOLS: tuple[str, ...] = (*PROTOCOLS, PAPER)
"""What ``hybrid.protocols`` accepts: a ranking protocol shared by every branch, or ``paper``."""
