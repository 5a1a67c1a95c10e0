"""digits.plots: what each figure of the explore, train and evaluate stages shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.synthetic import synthetic_digits
from matplotlib.figure import Figure

from digits.plots import (
    class_counts,
    class_distribution_figure,
    confusion_matrix_figure,
    mean_digits_figure,
    misclassified_grid,
    sample_grid,
    training_curves_figure,
)

ROWS, COLUMNS = 2, 5


def titles(figure: Figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_title()]


def test_sample_grid_titles_each_cell_with_its_label() -> None:
    images, labels = synthetic_digits(30, 0)
    figure = sample_grid(images, labels, ROWS, COLUMNS)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == ROWS * COLUMNS
    assert titles(figure) == [f"label {label}" for label in labels[: ROWS * COLUMNS]]
    assert figure.get_suptitle() == "Sample training digits"


def test_sample_grid_leaves_cells_empty_when_images_run_out() -> None:
    images, labels = synthetic_digits(3, 0)
    figure = sample_grid(images, labels, ROWS, COLUMNS)
    assert len(titles(figure)) == 3
    assert sum(len(ax.images) for ax in figure.axes) == 3


def test_class_distribution_counts_each_digit_and_plots_shares() -> None:
    counts = class_counts({"train": np.array([0, 0, 1, 9]), "test": np.array([5])})
    assert list(counts.columns) == ["digit", "train", "test"]
    assert counts["train"].tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert counts["test"].tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    figure = class_distribution_figure(counts)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    assert len(ax.patches) == 20  # a bar per digit per split
    heights = [patch.get_height() for patch in ax.patches]
    assert heights[:10] == pytest.approx([0.5, 0.25, 0, 0, 0, 0, 0, 0, 0, 0.25])  # shares


def test_mean_digits_shows_each_digits_average_image() -> None:
    images = np.zeros((20, 28, 28), np.float32)
    labels = np.arange(20) % 10
    images[labels == 4] = 0.5
    figure = mean_digits_figure(images, labels)
    assert isinstance(figure, Figure)
    assert titles(figure) == [f"mean {digit}" for digit in range(10)]
    shown = figure.axes[4].images[0].get_array()
    assert float(shown.mean()) == pytest.approx(0.5)


def test_training_curves_plot_train_and_validation_per_epoch() -> None:
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [0.9, 0.5, 0.3],
            "val_loss": [1.0, 0.6, 0.4],
            "accuracy": [0.7, 0.8, 0.9],
            "val_accuracy": [0.6, 0.75, 0.85],
        }
    )
    figure = training_curves_figure(history)
    assert isinstance(figure, Figure)
    assert titles(figure) == ["Training loss", "Training accuracy"]
    assert [len(ax.lines) for ax in figure.axes] == [2, 2]
    assert figure.axes[0].lines[1].get_ydata().tolist() == [1.0, 0.6, 0.4]


def test_confusion_matrix_figure_labels_every_cell() -> None:
    matrix = np.arange(100).reshape(10, 10)
    figure = confusion_matrix_figure(matrix)
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert sorted(int(text.get_text()) for text in ax.texts) == list(range(100))


def test_misclassified_grid_shows_only_the_wrong_ones() -> None:
    images, true = synthetic_digits(10, 0)
    predicted = true.copy()
    predicted[[2, 5, 7]] = (true[[2, 5, 7]] + 1) % 10
    figure = misclassified_grid(images, true, predicted, count=2, columns=3)
    assert isinstance(figure, Figure)
    assert titles(figure) == [f"{true[i]} -> {predicted[i]}" for i in (2, 5)]
    assert "first 2" in figure.get_suptitle()
