"""Figures of the model stage (the hybrid stage's figures live in hybridrec.hybrid.plots)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hybridrec import provenance  # noqa: E402
from hybridrec.io import atomic_path  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Save a PNG atomically (fixed dpi, no timestamp, the job's provenance as a text chunk)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight",
                    metadata=provenance.png_metadata())
    plt.close(fig)


def plot_learning_curve(history: pd.DataFrame, title: str, protocol: str, path: str | Path) -> None:
    """Training loss and validation metrics per epoch, the best epoch marked."""
    metrics = [c for c in history.columns if c.startswith("val_") and c != "val_users"]
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss_ax.plot(history["epoch"], history["loss"], marker="o", ms=3)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title=title)
    for column in metrics:
        metric_ax.plot(history["epoch"], history[column], marker="o", ms=3,
                       label=column.removeprefix("val_"))
    if "best_epoch" in history:
        metric_ax.axvline(int(history["best_epoch"].iloc[-1]), color="grey", ls="--", lw=1)
    metric_ax.set(xlabel="epoch", ylabel=f"validation ({protocol})")
    metric_ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)
