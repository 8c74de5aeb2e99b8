"""hybridrec: a reproducible pipeline for sequential recommendation (LinRec, FMLP-Rec, their gated hybrid)."""

__version__ = "0.1.0"
