"""hybridrec: reproducible sequential recommendation: LinRec, FMLP-Rec and their gated hybrid."""

__version__ = "0.1.0"
