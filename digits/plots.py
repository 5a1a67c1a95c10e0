"""Matplotlib figures for the explore, train and evaluate stages.

Figures are built with `matplotlib.figure.Figure` (no pyplot, so no global state and no GUI
backend); `digits.files.save_figure` writes them as PNGs with stable bytes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from digits.dataset import NUM_CLASSES


def _digit_grid(
    images: np.ndarray, titles: list[str], columns: int, title_colors: list[str] | None = None
) -> Figure:
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(columns * 0.9, rows * 1.05), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index < len(images):
            ax.imshow(images[index], cmap="gray_r", vmin=0, vmax=images.max() or 1)
            color = title_colors[index] if title_colors else "black"
            ax.set_title(titles[index], fontsize=8, color=color)
    return figure


def sample_grid(images: np.ndarray, labels: np.ndarray, rows: int, columns: int) -> Figure:
    """The first rows*columns digits with their labels. images: (N, 28, 28); labels: (N,)."""
    count = min(rows * columns, len(images))
    figure = _digit_grid(images[:count], [f"label {label}" for label in labels[:count]], columns)
    figure.suptitle("Sample training digits")
    return figure


def class_counts(labels_by_split: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per digit, one count column per split."""
    frame = pd.DataFrame({"digit": np.arange(NUM_CLASSES)})
    for split, labels in labels_by_split.items():
        frame[split] = np.bincount(labels, minlength=NUM_CLASSES)
    return frame


def class_distribution_figure(counts: pd.DataFrame) -> Figure:
    """Share of each digit per split, side by side (shares, so splits of any size compare)."""
    splits = [column for column in counts.columns if column != "digit"]
    figure = Figure(figsize=(8, 4), layout="constrained")
    ax = figure.subplots()
    width = 0.8 / len(splits)
    for offset, split in enumerate(splits):
        share = counts[split] / counts[split].sum()
        ax.bar(
            counts["digit"] + (offset - (len(splits) - 1) / 2) * width, share, width, label=split
        )
    ax.set_xticks(counts["digit"])
    ax.set_xlabel("digit")
    ax.set_ylabel("share of split")
    ax.set_title("Class distribution")
    ax.legend()
    return figure


def mean_digits_figure(images: np.ndarray, labels: np.ndarray) -> Figure:
    """The mean image of each digit class. images: (N, 28, 28); labels: (N,) in 0..9."""
    means = np.stack([images[labels == digit].mean(axis=0) for digit in range(NUM_CLASSES)])
    figure = _digit_grid(means, [f"mean {digit}" for digit in range(NUM_CLASSES)], NUM_CLASSES)
    figure.suptitle("Mean image per digit (training split)")
    return figure


def training_curves_figure(history: pd.DataFrame) -> Figure:
    """Loss and accuracy per epoch, train and validation."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    for ax, metric in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        ax.plot(history["epoch"], history[metric], marker="o", markersize=3, label="train")
        ax.plot(
            history["epoch"], history[f"val_{metric}"], marker="o", markersize=3, label="validation"
        )
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"Training {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    return figure


def confusion_matrix_figure(matrix: np.ndarray) -> Figure:
    """Counts heatmap, true digit per row, predicted per column, every cell labelled."""
    figure = Figure(figsize=(7, 6), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax, shrink=0.8)
    threshold = matrix.max() / 2
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        ax.text(column, row, str(count), ha="center", va="center", fontsize=7, color=color)
    ticks = np.arange(matrix.shape[0])
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title("Confusion matrix (test set)")
    return figure


def misclassified_grid(
    images: np.ndarray,
    true_labels: np.ndarray,
    predicted_labels: np.ndarray,
    count: int,
    columns: int = 9,
) -> Figure:
    """The first `count` test digits the model got wrong, titled `true -> predicted`."""
    wrong = np.flatnonzero(true_labels != predicted_labels)[:count]
    titles = [f"{true_labels[i]} -> {predicted_labels[i]}" for i in wrong]
    figure = _digit_grid(images[wrong], titles, columns, title_colors=["firebrick"] * len(wrong))
    figure.suptitle(f"Misclassified test digits (true -> predicted), first {len(wrong)}")
    return figure
