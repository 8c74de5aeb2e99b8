"""Every figure of the pipeline: learning curves, the SHAP beeswarm (hybrid paper Fig. 4), the
gate's weight against sequence length (Fig. 6) and the gate search's landscape.

Each function takes arrays or frames and writes one PNG. Figures are plain
:class:`matplotlib.figure.Figure` objects rendered by the Agg canvas: no pyplot state, no display
needed, whatever backend is configured. Branches are named by their model, never by an index.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hybridrec import provenance
from hybridrec.hybrid.list_metrics import KEYS
from hybridrec.io import atomic_path

if TYPE_CHECKING:
    import shap

_DPI = 150
PathLike = str | os.PathLike[str]


def save_figure(figure: Figure, path: PathLike) -> None:
    """Save a PNG atomically (fixed dpi, no software tag, so reruns give equal bytes; the job's
    provenance as a text chunk)."""
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=_DPI, format="png", metadata=provenance.png_metadata())


def plot_learning_curve(history: pd.DataFrame, title: str, protocol: str, path: PathLike) -> None:
    """Training loss and validation metrics under ``protocol`` per epoch, the epoch selected
    under it marked."""
    prefix = f"val_{protocol}_"
    metrics = [c for c in history.columns if c.startswith(prefix) and c != f"{prefix}users"]
    figure = Figure(figsize=(10, 3.6))
    loss_ax, metric_ax = figure.subplots(1, 2)
    loss_ax.plot(history["epoch"], history["loss"], marker="o", ms=3)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title=title)
    for column in metrics:
        metric_ax.plot(history["epoch"], history[column], marker="o", ms=3,
                       label=column.removeprefix(prefix))
    if f"best_epoch_{protocol}" in history:
        metric_ax.axvline(int(history[f"best_epoch_{protocol}"].iloc[-1]), color="grey",
                          ls="--", lw=1)
    metric_ax.set(xlabel="epoch", ylabel=f"validation ({protocol})")
    metric_ax.legend(fontsize=7, ncol=2)
    save_figure(figure, path)


def normalised_length(lengths: np.ndarray) -> np.ndarray:
    """Sequence lengths scaled to [0, 1] by the largest one (Fig. 6's x axis)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    top = lengths.max(initial=0.0)
    return lengths / top if top > 0 else lengths


def plot_shap_beeswarm(explanation: shap.Explanation, path: PathLike, weighted_branch: str,
                       title: str = "", max_display: int = 10, seed: int = 0) -> None:
    """SHAP beeswarm of the gate's weight of ``weighted_branch`` (paper Fig. 4).

    shap jitters and orders the dots with NumPy's global random state; it is seeded here (and
    restored after) so the figure is the same file run to run.
    """
    import shap

    shown = min(max_display, explanation.values.shape[1])
    figure = Figure(figsize=(8, 0.5 * shown + 1.5))
    axes = figure.add_subplot()
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed % 2**32)  # noqa: NPY002 (shap reads the legacy global state)
    try:
        shap.plots.beeswarm(explanation, max_display=max_display, ax=axes, plot_size=None,
                            show=False)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    axes.set_xlabel(f"SHAP value (impact on the weight of {weighted_branch})")
    if title:
        figure.suptitle(title)
    save_figure(figure, path)


def plot_alpha_vs_length(alpha: np.ndarray, norm_length: np.ndarray, path: PathLike,
                         weighted_branch: str, title: str = "", bins: int = 20) -> None:
    """The gate's weight of ``weighted_branch`` (alpha) per user against normalised length
    (Fig. 6). Dots are users; the line is the mean alpha in ``bins`` equal-width length bins."""
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
    axes.set_ylabel(f"alpha (weight of {weighted_branch})")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(loc="best")
    if title:
        axes.set_title(title)
    save_figure(figure, path)


def plot_search_landscape(trials: pd.DataFrame, path: PathLike, weighted_branch: str,
                          selected_trial: int, selection: str, title: str = "") -> None:
    """Held-out fused MRR@10 of every trial against each searched parameter; the trial the
    search selected (under ``selection``) in red."""
    metric = KEYS[0]
    panels = [("lr", "lr", True), ("hidden", "hidden", False), ("epochs", "epochs", False),
              ("n_estimators", "n_estimators", False), ("max_depth", "max_depth", False),
              ("learning_rate", "learning_rate", True), ("max_iter", "max_iter", False),
              ("max_leaf_nodes", "max_leaf_nodes", False),
              ("min_samples_leaf", "min_samples_leaf", True),
              ("pos_weight", "pos_weight", False), ("noise", "noise", False),
              ("alpha_mean", f"mean weight of {weighted_branch}", False)]
    panels = [panel for panel in panels if panel[0] in trials and trials[panel[0]].notna().any()]
    best = trials[trials["trial"] == selected_trial].iloc[0]
    columns = 3
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4 * columns, 3.2 * rows))
    axes = figure.subplots(rows, columns, sharey=True, squeeze=False)
    for ax, (name, label, log) in zip(axes.flat, panels, strict=False):
        ax.scatter(trials[name], trials[metric], s=8, alpha=0.5, linewidths=0)
        ax.scatter([best[name]], [best[metric]], s=40, color="C3",
                   label=f"selected ({selection})")
        if log:
            ax.set_xscale("log")
        if name in ("hidden", "epochs"):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(trials[name].unique()))
            ax.set_xticklabels([str(v) for v in sorted(trials[name].unique())])
        ax.set_xlabel(label)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"held-out fused {metric}")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="best")
    if title:
        figure.suptitle(title)
    save_figure(figure, path)
