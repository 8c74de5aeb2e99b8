"""The hybrid stage's figures: SHAP beeswarm (paper Fig. 4), alpha against sequence length
(Fig. 6), and the random-search landscape. Each takes arrays or frames and writes one PNG.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas: no
pyplot state, no display needed, whatever backend is configured.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import shap
from matplotlib.figure import Figure

from hybridrec import provenance
from hybridrec.hybrid.list_metrics import KEYS
from hybridrec.io import atomic_path

_DPI = 150


def normalised_length(lengths: np.ndarray) -> np.ndarray:
    """Sequence lengths scaled to [0, 1] by the largest one (Fig. 6's x axis)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    top = lengths.max(initial=0.0)
    return lengths / top if top > 0 else lengths


def plot_shap_beeswarm(explanation: shap.Explanation, path: str | os.PathLike[str],
                       title: str = "", max_display: int = 10, seed: int = 0) -> None:
    """SHAP beeswarm of one gate output (paper Fig. 4).

    shap jitters and orders the dots with NumPy's global random state; it is seeded here (and
    restored after) so the figure is the same file run to run.
    """
    shown = min(max_display, explanation.values.shape[1])
    figure = Figure(figsize=(8, 0.5 * shown + 1.5))
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed % 2**32)  # noqa: NPY002 (shap reads the legacy global state)
    try:
        shap.plots.beeswarm(explanation, max_display=max_display, ax=figure.add_subplot(),
                            plot_size=None, show=False)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    if title:
        figure.suptitle(title)
    _save(figure, path)


def plot_alpha_vs_length(alpha: np.ndarray, norm_length: np.ndarray,
                         path: str | os.PathLike[str], title: str = "", bins: int = 20) -> None:
    """The gate's alpha (branch 0's weight) per user against normalised length (Fig. 6).

    Dots are users; the line is the mean alpha in ``bins`` equal-width length bins.
    """
    alpha, norm_length = np.asarray(alpha, float), np.asarray(norm_length, float)
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.scatter(norm_length, alpha, s=4, alpha=0.3, linewidths=0, label="users")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(norm_length, edges) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    sums = np.bincount(which, weights=alpha, minlength=bins)
    filled = counts > 0
    centres = (edges[:-1] + edges[1:]) / 2
    axes.plot(centres[filled], sums[filled] / counts[filled], color="C3", marker="o",
              label="bin mean")
    axes.set_xlabel("normalised sequence length")
    axes.set_ylabel("alpha (weight of branch 0)")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(loc="best")
    if title:
        axes.set_title(title)
    _save(figure, path)


def plot_search_landscape(trials: pd.DataFrame, path: str | os.PathLike[str],
                          title: str = "") -> None:
    """Held-out fused MRR@10 of every trial against each searched parameter; best in red."""
    metric = KEYS[0]
    panels = [("lr", True), ("hidden", False), ("epochs", False), ("pos_weight", False),
              ("noise", False), ("alpha_mean", False)]
    panels = [(name, log) for name, log in panels if name in trials]
    best = trials.sort_values([metric, KEYS[1], "trial"], ascending=[False, False, True]).iloc[0]
    columns = 3
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4 * columns, 3.2 * rows))
    axes = figure.subplots(rows, columns, sharey=True, squeeze=False)
    for ax, (name, log) in zip(axes.flat, panels, strict=False):
        ax.scatter(trials[name], trials[metric], s=8, alpha=0.5, linewidths=0)
        ax.scatter([best[name]], [best[metric]], s=40, color="C3", label="selected")
        if log:
            ax.set_xscale("log")
        if name in ("hidden", "epochs"):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(trials[name].unique()))
            ax.set_xticklabels([str(v) for v in sorted(trials[name].unique())])
        ax.set_xlabel(name)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"held-out fused {metric}")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="best")
    if title:
        figure.suptitle(title)
    _save(figure, path)


def _save(figure: Figure, path: str | os.PathLike[str]) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=_DPI, format="png", metadata=provenance.png_metadata())
