"""Published figures the result tables put beside ours (from ../shared/REFERENCE.md).

Metric keys are ours (:mod:`hybridrec.evaluation.metrics`): ``mrr`` is the reciprocal rank over
every candidate, ``mrr@10`` the one truncated at 10 (RecBole's "MRR"), ``hr@10`` also stands for
RecBole's Recall@10 (one relevant item per user).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# FMLP-Rec paper, Beauty, uniform99 (Table I).
FMLP_BEAUTY = {"hr@1": 0.2011, "hr@5": 0.4025, "ndcg@5": 0.3070, "hr@10": 0.4998,
               "ndcg@10": 0.3385, "mrr": 0.3051}
# LinRec paper, ML-1M, LinRec + SASRec, pop100 (Table II). Its "MRR" is RecBole's MRR@10.
LINREC_ML1M = {"hr@10": 0.7209, "mrr@10": 0.4301, "ndcg@10": 0.4997}
# Hybrid paper, Table V: (MRR, NDCG@10) per paper dataset and method. Each branch's row is
# under its own paper's protocol; the hybrid fused LinRec's pop100 lists with FMLP-Rec's
# uniform99 lists (a mixed protocol). The MRR column is MRR@10 for LinRec (RecBole's) and for the
# hybrid (fused top-10 lists), but FMLP-Rec's is its Table I MRR, over all 100 candidates: not
# comparable with an MRR@10 (TABLE5_MRR_AT_10).
TABLE5 = {
    ("ml-1m", "linrec"): (0.4062, 0.4736),
    ("ml-1m", "fmlp"): (0.5089, 0.5724),
    ("ml-1m", "hybrid"): (0.5158, 0.5847),
    ("beauty", "linrec"): (0.1906, 0.2327),
    ("beauty", "fmlp"): (0.3031, 0.3358),
    ("beauty", "hybrid"): (0.2967, 0.3412),
}
TABLE5_MRR_AT_10 = {"linrec": True, "fmlp": False, "hybrid": True}
TABLE5_PROTOCOLS = {"linrec": "pop100", "fmlp": "uniform99",
                    "hybrid": "linrec pop100 + fmlp uniform99"}
# Hybrid paper, Table VI: users for whom each model "produced the best recommendations" (the
# better reciprocal rank in the top 10 of LinRec under pop100 and FMLP-Rec under uniform99, the
# same mixed protocol; both: a tie; neither: no hit).
TABLE6 = {
    "beauty": {"linrec": 2431, "fmlp": 7718, "both": 2838, "neither": 9376},
    "ml-1m": {"linrec": 1090, "fmlp": 2616, "both": 1470, "neither": 864},
}
TABLE6_PROTOCOL = TABLE5_PROTOCOLS["hybrid"]


@dataclass(frozen=True)
class Published:
    """Published test figures of one model on one of the papers' datasets, under one protocol."""

    source: str                    # where they are printed
    dataset: str                   # the papers' name of the dataset (``datasets.<name>.paper``)
    model: str                     # our model name
    protocol: str                  # our name of the protocol they were computed under
    metrics: Mapping[str, float]   # our metric keys


def _table5_branch(dataset: str, model: str) -> dict[str, float]:
    mrr, ndcg = TABLE5[(dataset, model)]
    return {"mrr@10" if TABLE5_MRR_AT_10[model] else "mrr": mrr, "ndcg@10": ndcg}


# Every published single-model figure that one of our datasets can be compared with. The hybrid's
# Table V row and Table VI come from the hybrid stage (reporting.tables), under PAPER.
PUBLISHED: tuple[Published, ...] = (
    Published("FMLP-Rec paper (hybrid paper Table I, paper row)", "beauty", "fmlp",
              "uniform99", FMLP_BEAUTY),
    Published("hybrid paper Table I (its reproduction)", "beauty", "fmlp", "uniform99",
              {"hr@1": 0.1987, "hr@5": 0.4019, "ndcg@5": 0.3055, "hr@10": 0.4956,
               "ndcg@10": 0.3358, "mrr": 0.3031}),
    Published("FMLP-Rec official checkpoint's log", "beauty", "fmlp", "uniform99",
              {"hr@1": 0.1942, "hr@5": 0.3963, "ndcg@5": 0.3004, "hr@10": 0.4935,
               "ndcg@10": 0.3317, "mrr": 0.2985}),
    Published("hybrid paper Tables III and V", "beauty", "linrec", "pop100",
              _table5_branch("beauty", "linrec")),
    Published("hybrid paper Tables III and V", "beauty", "fmlp", "uniform99",
              _table5_branch("beauty", "fmlp")),
    Published("LinRec paper (hybrid paper Table II, paper row)", "ml-1m", "linrec", "pop100",
              LINREC_ML1M),
    Published("hybrid paper Table II (its reproduction)", "ml-1m", "linrec", "pop100",
              {"hr@10": 0.6884, "mrr@10": 0.4062, "ndcg@10": 0.4736}),
    Published("hybrid paper Tables III and V", "ml-1m", "linrec", "pop100",
              _table5_branch("ml-1m", "linrec")),
    Published("hybrid paper Tables III and V", "ml-1m", "fmlp", "uniform99",
              _table5_branch("ml-1m", "fmlp")),
    *(Published("S3-Rec paper Table 2 (SASRec row)", dataset, "sasrec", "uniform99",
                dict(zip(("hr@1", "hr@5", "ndcg@5", "hr@10", "ndcg@10", "mrr"), row,
                         strict=True)))
      for dataset, row in (("beauty", (0.1870, 0.3741, 0.2848, 0.4696, 0.3156, 0.2852)),
                           ("sports", (0.1455, 0.3466, 0.2497, 0.4622, 0.2869, 0.2520)),
                           ("yelp", (0.2375, 0.5745, 0.4113, 0.7373, 0.4642, 0.3927)))),
)
