"""The report's pictures, drawn with matplotlib's object API (no pyplot state) and saved as PNG.

Every function takes plain arrays and the output path, draws one figure with a title and labelled
axes, writes it, and returns the path. `Figure.savefig` renders PNGs with the Agg canvas, so no
display or interactive backend is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import MaxNLocator

from training.evaluation.metrics import RocCurve
from training.evaluation.versions import History

DPI = 110
TILE_SCALE = 4


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its total (rows of a class absent from the test set stay 0)."""
    totals = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    out = np.zeros(confusion.shape)
    np.divide(confusion, totals, out=out, where=totals > 0)
    return out


def _draw_confusion(
    axes: Axes, confusion: np.ndarray, class_names: Sequence[str], title: str
) -> AxesImage:
    """Counts written in the cells, coloured by the fraction of the true class."""
    fractions = row_normalised(confusion)
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, labels=class_names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(ticks, labels=class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    for (row, col), count in np.ndenumerate(confusion):
        colour = "white" if fractions[row, col] > 0.5 else "black"
        axes.text(col, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    return image


def plot_confusion(
    confusion: np.ndarray, class_names: Sequence[str], path: Path, title: str
) -> Path:
    figure = Figure(figsize=(8.5, 7.5), layout="constrained")
    axes = figure.add_subplot()
    image = _draw_confusion(axes, confusion, class_names, title)
    figure.colorbar(image, ax=axes, label="fraction of the true class (row-normalised)")
    return _save(figure, path)


def plot_confusions_side_by_side(
    confusions: Sequence[np.ndarray],
    class_names: Sequence[str],
    titles: Sequence[str],
    path: Path,
) -> Path:
    """Several confusion matrices in one figure, sharing one colour scale."""
    figure = Figure(figsize=(7.5 * len(confusions) + 1, 7.0), layout="constrained")
    panels = figure.subplots(1, len(confusions), squeeze=False)[0]
    image = None
    for axes, confusion, title in zip(panels, confusions, titles, strict=True):
        image = _draw_confusion(axes, confusion, class_names, title)
    if image is not None:
        figure.colorbar(image, ax=list(panels), label="fraction of the true class", shrink=0.8)
    return _save(figure, path)


def plot_roc(curves: Sequence[RocCurve], class_names: Sequence[str], path: Path) -> Path:
    """Every class's one-vs-rest ROC curve, with its AUC in the legend."""
    figure = Figure(figsize=(8, 7), layout="constrained")
    axes = figure.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    for index, (curve, name) in enumerate(zip(curves, class_names, strict=True)):
        if np.isnan(curve.auc):
            continue
        axes.plot(
            curve.false_positive_rate,
            curve.true_positive_rate,
            color=colours[index % len(colours)],
            linestyle="-" if index < len(colours) else "--",
            label=f"{name} (AUC {curve.auc:.3f})",
        )
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance (AUC 0.5)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("One-vs-rest ROC curves")
    axes.legend(loc="lower right", fontsize=9)
    axes.grid(alpha=0.3)
    return _save(figure, path)


def upscale(image: np.ndarray, factor: int = TILE_SCALE) -> np.ndarray:
    """Nearest-neighbour enlargement: every pixel becomes a `factor` x `factor` block."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def plot_image_grid(
    images: np.ndarray, captions: Sequence[str], path: Path, title: str, columns: int = 5
) -> Path:
    """Images in a grid, enlarged without smoothing, each above its caption."""
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(2.6 * columns, 3.0 * rows), layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes in panels:
        axes.axis("off")
    for axes, image, caption in zip(panels, images, captions, strict=False):
        axes.imshow(upscale(image), interpolation="nearest")
        axes.set_title(caption, fontsize=9)
    figure.suptitle(title)
    return _save(figure, path)


def _mark_phases(axes: Axes, history: History) -> None:
    """A dotted line where a multi-phase run (e.g. head, then fine-tuning) changes phase."""
    for epoch, phase in history.phase_starts():
        axes.axvline(epoch - 0.5, color="grey", linestyle=":")
        axes.annotate(
            f"phase {phase}",
            (epoch - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="grey",
        )


def _plot_series(
    axes: Axes, history: History, names: Sequence[tuple[str, str]], ylabel: str
) -> None:
    epochs = history.epoch_numbers()
    for column, label in names:
        values = history.column(column)
        if values is not None:
            axes.plot(epochs, values, marker="o", markersize=3, label=label)
    _mark_phases(axes, history)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()


def plot_training_curves(history: History, path: Path) -> Path:
    """Loss and accuracy per epoch, training against validation."""
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    _plot_series(loss_axes, history, [("loss", "train"), ("val_loss", "validation")], "loss")
    loss_axes.set_title("Loss per epoch")
    accuracy_series = [("accuracy", "train"), ("val_accuracy", "validation")]
    _plot_series(accuracy_axes, history, accuracy_series, "accuracy")
    accuracy_axes.set_title("Accuracy per epoch")
    return _save(figure, path)


def plot_learning_rate(history: History, path: Path) -> Path:
    """The learning rate at the end of each epoch."""
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    _plot_series(axes, history, [("learning_rate", "learning rate")], "learning rate")
    axes.set_title("Learning-rate schedule (value at the end of each epoch)")
    return _save(figure, path)
