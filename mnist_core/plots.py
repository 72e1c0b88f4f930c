"""PNG plots for reports: confusion heatmap, learning curves, accuracy per hyperparameter.

Each function renders with matplotlib's non-interactive Agg backend and returns PNG bytes,
so the caller writes them atomically wherever reports go (a local folder or an object store).
"""

from __future__ import annotations

import io

import numpy as np


def confusion_heatmap(confusion: np.ndarray, title: str) -> bytes:
    """A 10×10 heatmap, rows = true label, columns = predicted, with counts in the cells."""
    figure, axes = _figure(6.4, 5.6)
    image = axes.imshow(confusion, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046)
    threshold = confusion.max() / 2 if confusion.size else 0
    for (row, column), count in np.ndenumerate(confusion):
        axes.text(column, row, str(count), ha="center", va="center", fontsize=7,
                  color="white" if count > threshold else "black")
    labels = range(confusion.shape[0])
    axes.set(xticks=list(labels), yticks=list(labels), xlabel="predicted label",
             ylabel="true label", title=title)
    return _png(figure)


def learning_curves(history: dict[str, list[float]], title: str) -> bytes:
    """Loss and accuracy per epoch, training and (when present) validation."""
    figure, (loss_axes, accuracy_axes) = _figure(10, 4, columns=2)
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            values = history.get(prefix + metric)
            if values:
                axes.plot(range(1, len(values) + 1), values, style, label=prefix + metric)
        axes.set(xlabel="epoch", ylabel=metric)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    return _png(figure)


def accuracy_by_hyperparameter(rows: list[dict], names: list[str]) -> bytes:
    """One panel per hyperparameter: test accuracy of every ok trial against its value."""
    figure, axes_list = _figure(4 * len(names), 3.6, columns=len(names))
    axes_list = np.atleast_1d(axes_list)
    for axes, name in zip(axes_list, names):
        values = [_label(row[name]) for row in rows]
        categories = sorted(set(values), key=_sort_key)
        positions = [categories.index(value) for value in values]
        axes.scatter(positions, [row["test_accuracy"] for row in rows], alpha=0.7)
        axes.set_xticks(range(len(categories)), categories, rotation=30)
        axes.set(xlabel=name, ylabel="test accuracy")
        axes.grid(alpha=0.3)
    figure.suptitle("test accuracy per hyperparameter (ok trials)")
    return _png(figure)


def _figure(width: float, height: float, columns: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot.subplots(1, columns, figsize=(width, height))


def _png(figure) -> bytes:
    from matplotlib import pyplot

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    pyplot.close(figure)
    return buffer.getvalue()


def _label(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _sort_key(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)
