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


def accuracy_by_hyperparameter(rows: list[dict], names: list[str],
                               log_scaled: frozenset[str] = frozenset()) -> bytes:
    """One panel per hyperparameter: validation accuracy (and, fainter, test accuracy) of every
    ok trial against its value; a numeric axis for continuous values (log for log-scaled or
    wide-ranging ones), categories otherwise."""
    figure, axes_list = _figure(4 * len(names), 3.6, columns=len(names))
    for axes, name in zip(np.atleast_1d(axes_list), names):
        values = [row[name] for row in rows]
        positions = _positions(axes, name, values, log_scaled)
        axes.scatter(positions, [row["val_accuracy"] for row in rows], alpha=0.7, s=14,
                     label="validation")
        axes.scatter(positions, [row["test_accuracy"] for row in rows], alpha=0.35, s=8,
                     marker="x", label="test")
        axes.set(xlabel=name, ylabel="accuracy")
        axes.grid(alpha=0.3)
    np.atleast_1d(axes_list)[0].legend(loc="lower right", fontsize=8)
    figure.suptitle("accuracy per hyperparameter (ok trials; validation chooses)")
    return _png(figure)


def _positions(axes, name: str, values: list, log_scaled: frozenset[str]) -> list:
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numeric and len(set(values)) > 6:
        positive = min(values) > 0
        if positive and (name in log_scaled or max(values) / min(values) > 100):
            axes.set_xscale("log")
        return values
    labels = [_label(value) for value in values]
    categories = sorted(set(labels), key=_sort_key)
    axes.set_xticks(range(len(categories)), categories, rotation=30)
    return [categories.index(label) for label in labels]


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
