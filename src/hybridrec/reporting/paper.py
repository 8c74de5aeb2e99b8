"""Published figures the result tables put beside ours (from ../shared/REFERENCE.md)."""

from __future__ import annotations

# FMLP-Rec paper, Beauty, uniform99 (Table I).
FMLP_BEAUTY = {"hr@1": 0.2011, "hr@5": 0.4025, "ndcg@5": 0.3070, "hr@10": 0.4998,
               "ndcg@10": 0.3385, "mrr": 0.3051}
# LinRec paper, ML-1M, LinRec + SASRec, pop100 (Table II). Its "MRR" is RecBole's MRR@10.
LINREC_ML1M = {"hr@10": 0.7209, "mrr@10": 0.4301, "ndcg@10": 0.4997}
# The protocol each model's published figures were computed under (its own paper's code):
# LinRec and SASRec with RecBole's 100 popularity-drawn negatives, FMLP-Rec with 99 uniform ones.
PAPER_PROTOCOLS = {"linrec": "pop100", "sasrec": "pop100", "fmlp": "uniform99"}
# `hybrid.protocols` entry for the hybrid over each branch's export under its PAPER_PROTOCOLS
PAPER = "paper"
# Hybrid paper, Table V: (MRR@10, NDCG@10) per paper dataset and method. Each branch's row is
# under its own paper's protocol; the hybrid fused LinRec's pop100 lists with FMLP-Rec's
# uniform99 lists (a mixed protocol).
TABLE5 = {
    ("ml-1m", "linrec"): (0.4062, 0.4736),
    ("ml-1m", "fmlp"): (0.5089, 0.5724),
    ("ml-1m", "hybrid"): (0.5158, 0.5847),
    ("beauty", "linrec"): (0.1906, 0.2327),
    ("beauty", "fmlp"): (0.3031, 0.3358),
    ("beauty", "hybrid"): (0.2967, 0.3412),
}
TABLE5_PROTOCOLS = {"linrec": "pop100", "fmlp": "uniform99",
                    "hybrid": "linrec pop100 + fmlp uniform99"}
# Hybrid paper, Table VI: users for whom each model was better (top-10 hits of LinRec under
# pop100 and FMLP-Rec under uniform99, the same mixed protocol).
TABLE6 = {
    "beauty": {"linrec": 2431, "fmlp": 7718, "both": 2838, "neither": 9376},
    "ml-1m": {"linrec": 1090, "fmlp": 2616, "both": 1470, "neither": 864},
}
TABLE6_PROTOCOL = TABLE5_PROTOCOLS["hybrid"]
