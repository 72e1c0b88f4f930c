"""Every chart of the HTML reports, as Plotly figures: data computed here once, drawn by
plotly.js in the page (axes, ticks, hover, log axes for log-scaled hyperparameters).

Each function is pure: report rows in, a ``plotly.graph_objects.Figure`` out. Big sweeps stay
cheap to draw (measured in bench/page.py): scatters and parallel coordinates show at most
``MAX_POINTS`` trials (every one of the best ``TOP_KEPT`` plus a seeded sample of the rest,
said in the title), curves at most ``MAX_CURVES`` as one trace (the best few on their own), and
scatters are SVG: a WebGL context per chart costs more than it saves at this size, above all
where the browser draws WebGL in software.
"""

from __future__ import annotations

import math

import numpy as np

from mnist_core.config import NUM_CLASSES, class_names, hyperparameter_text

MAX_POINTS = 1000
TOP_KEPT = 300
MAX_CURVES = 300
HIGHLIGHTED = 5
DOT_SIZE = 4  # px: a one-epoch trial's point on the curves chart

def shown(ranked: list[dict], seed: int = 0) -> list[dict]:
    """The trials a chart draws: all when few, else the best ``TOP_KEPT`` (``ranked`` is best
    first) and a seeded sample of the rest, ``MAX_POINTS`` in all."""
    if len(ranked) <= MAX_POINTS:
        return ranked
    rest = ranked[TOP_KEPT:]
    picked = np.random.default_rng(seed).choice(len(rest), MAX_POINTS - TOP_KEPT, replace=False)
    return ranked[:TOP_KEPT] + [rest[index] for index in sorted(picked)]


def _sampled_note(drawn: int, total: int) -> str:
    return "" if drawn == total else f" — {drawn:,} of {total:,} trials (the best {TOP_KEPT:,} " \
                                     "and a sample)"


def _layout(figure, title: str, x: str, y: str, **axes):
    # The title hangs below the strip Plotly's toolbar takes at the top, so no title runs
    # beneath the toolbar however narrow the chart (Plotly raises a title by half of each
    # extra line, so a subtitle moves it down further).
    extra = 16 * title.count("<br>")
    figure.update_layout(title={"text": title, "x": 0, "xanchor": "left", "xref": "paper",
                                "y": 1, "yref": "container", "yanchor": "top",
                                "pad": {"t": 30 + extra}},
                         template="plotly_white", height=380 + extra,
                         margin={"l": 60, "r": 20, "t": 80 + extra, "b": 50}, **axes)
    figure.update_xaxes(title_text=x, showline=True, ticks="outside")
    figure.update_yaxes(title_text=y, showline=True, ticks="outside")
    return figure


def confusion(cells: list[dict], title: str, dataset: str | None = None):
    """The confusion matrix as a heatmap with each cell's count written in it, its classes
    named as ``dataset`` names them."""
    import plotly.graph_objects as go

    counts = np.zeros((NUM_CLASSES, NUM_CLASSES), int)
    for cell in cells:
        counts[cell["true_label"], cell["predicted_label"]] = cell["count"]
    labels = class_names(dataset)
    figure = go.Figure(go.Heatmap(z=counts, x=labels, y=labels, colorscale="Blues",
                                  text=counts, texttemplate="%{text}",
                                  colorbar={"title": "images"},
                                  hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    figure.update_yaxes(autorange="reversed")
    return _layout(figure, title, "predicted label", "true label")


def learning_curves(epochs: list[dict], title: str):
    """Accuracy and loss per epoch, training and validation, on two panels."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss"))
    x = [row["epoch"] for row in epochs]
    for column, metric in enumerate(("accuracy", "loss"), start=1):
        for prefix, dash in (("", "solid"), ("val_", "dash")):
            name = prefix + metric
            if epochs and epochs[0].get(name) is not None:
                figure.add_trace(go.Scatter(x=x, y=[row[name] for row in epochs], name=name,
                                            mode="lines+markers", line={"dash": dash}),
                                 row=1, col=column)
    _layout(figure, title, "epoch", "")
    figure.update_yaxes(title_text="accuracy", row=1, col=1)
    figure.update_yaxes(title_text="loss (cross-entropy)", row=1, col=2)
    return figure


def all_curves(epochs_by_trial: dict[str, list[dict]], ranked: list[dict]):
    """Every trial's validation accuracy per epoch (up to ``MAX_CURVES``; pruned trials up to
    their rung), the best ``HIGHLIGHTED`` drawn over the rest in colour. A trial of one epoch
    (a one-epoch sweep, a trial pruned at a first rung of one epoch) is a dot: a line needs
    two points."""
    import plotly.graph_objects as go

    drawn = ranked[:MAX_CURVES]
    x, y, names, dots = [], [], [], []
    for row in drawn[HIGHLIGHTED:]:  # the rest: one trace, each curve ended by a gap
        epochs = epochs_by_trial.get(row["trial_id"], [])
        x += [e["epoch"] for e in epochs] + [None]
        y += [e["val_accuracy"] for e in epochs] + [None]
        names += [f"{row['trial_id']} ({row['status']})"] * len(epochs) + [None]
        dots += [DOT_SIZE if len(epochs) == 1 else 0] * len(epochs) + [0]
    figure = go.Figure(go.Scatter(x=x, y=y, text=names, mode="lines+markers",
                                  name="other trials", opacity=0.3,
                                  line={"width": 1, "color": "#888"},
                                  marker={"size": dots, "color": "#888"},
                                  hovertemplate="%{text}<br>epoch %{x}: %{y:.4f}<extra></extra>"))
    for row in drawn[:HIGHLIGHTED]:
        epochs = epochs_by_trial.get(row["trial_id"], [])
        figure.add_trace(go.Scatter(
            x=[e["epoch"] for e in epochs], y=[e["val_accuracy"] for e in epochs],
            mode="markers" if len(epochs) == 1 else "lines", name=row["trial_id"],
            line={"width": 2.5}, marker={"size": 2 * DOT_SIZE},
            hovertemplate=f"{row['trial_id']}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>"))
    note = "" if len(drawn) == len(ranked) else f" — the best {len(drawn):,} of {len(ranked):,}"
    return _layout(figure, f"Validation accuracy per epoch, every trial{note}", "epoch",
                   "validation accuracy")


def history(steps: list[dict]):
    """Best validation accuracy so far against trials finished, and against wall time.
    ``steps``: each trial that raised the best so far (and the last), with ``finished`` (how
    many trials had finished by then), ``best`` and ``finished_at``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("by trials finished",
                                                          "by wall time"))
    best = [step["best"] for step in steps]
    figure.add_trace(go.Scatter(x=[step["finished"] for step in steps], y=best,
                                mode="lines+markers", line_shape="hv", name="best so far",
                                text=[step["trial_id"] for step in steps],
                                hovertemplate="%{text}: %{y:.4f} after %{x} trials"
                                              "<extra></extra>"), row=1, col=1)
    times = [step["finished_at"] for step in steps]
    day = ""
    if times and all(moment is not None for moment in times):
        figure.add_trace(go.Scatter(x=times, y=best, mode="lines+markers",
                                    line_shape="hv", name="best so far (time)",
                                    showlegend=False), row=1, col=2)
        day = f" on {min(times):%Y-%m-%d}"
    _layout(figure, "Best validation accuracy so far", "", "best validation accuracy")
    figure.update_xaxes(title_text="trials finished", row=1, col=1)
    # The day once in the title, times alone on the ticks: no date crammed against a tick.
    figure.update_xaxes(title_text=f"finished at (UTC{day})", tickformat="%H:%M:%S",
                        nticks=4, row=1, col=2)
    return figure


def slice_plot(ranked: list[dict], name: str, log: bool, total: int):
    """Validation accuracy against one hyperparameter, a point per trial, hover naming the
    trial and its settings."""
    import plotly.graph_objects as go

    rows = shown(ranked)
    values = [hyperparameter_text(row[name]) for row in rows]
    figure = go.Figure(go.Scatter(
        x=values, y=[row["val_accuracy"] for row in rows], mode="markers",
        marker={"size": 6, "opacity": 0.6, "color": [row["val_accuracy"] for row in rows],
                "colorscale": "Viridis"},
        text=[row["trial_id"] for row in rows],
        hovertemplate=f"%{{text}}<br>{name} %{{x}}<br>validation %{{y:.4f}}<extra></extra>"))
    _layout(figure, f"{name}{_sampled_note(len(rows), total)}", name + (" (log)" if log else ""),
            "validation accuracy")
    if log:
        figure.update_xaxes(type="log")
    return figure


def parallel(ranked: list[dict], names: list[str], log_scaled: frozenset[str], total: int):
    """Parallel coordinates of the swept hyperparameters and validation accuracy, coloured by
    validation accuracy; drag along an axis to filter."""
    import plotly.graph_objects as go

    rows = shown(ranked)
    dimensions = [_dimension(rows, name, name in log_scaled) for name in names]
    accuracy = [row["val_accuracy"] for row in rows]
    dimensions.append({"label": "val_accuracy", "values": accuracy})
    figure = go.Figure(go.Parcoords(
        line={"color": accuracy, "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": "val_accuracy"}}, dimensions=dimensions))
    figure.update_layout(title="All trials: drag along an axis to filter"
                               + _sampled_note(len(rows), total),
                         template="plotly_white", height=420,
                         margin={"l": 80, "r": 80, "t": 80, "b": 40})
    return figure


def importance(shares: dict[str, float], about: str = "val_accuracy"):
    """Each hyperparameter's importance (permutation importance of a random forest fit to
    ``about``: which score of which trials)."""
    import plotly.graph_objects as go

    ordered = sorted(shares.items(), key=lambda item: item[1])
    figure = go.Figure(go.Bar(x=[share for _, share in ordered], y=[n for n, _ in ordered],
                              orientation="h",
                              hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    _layout(figure, f"Hyperparameter importance<br><sup>fit on {about}</sup>",
            "share of importance (permutation importance, random forest)", "")
    figure.update_xaxes(tickformat=".0%")
    return figure


def label_counts(counts: dict[int, int]):
    """Predicted labels: images per label."""
    import plotly.graph_objects as go

    labels = list(range(NUM_CLASSES))
    figure = go.Figure(go.Bar(x=[str(label) for label in labels],
                              y=[counts.get(label, 0) for label in labels],
                              hovertemplate="label %{x}: %{y:,} images<extra></extra>"))
    return _layout(figure, "Predicted labels", "predicted label", "images")


def confidence(probabilities: np.ndarray):
    """How sure the model was: a histogram of each image's top probability."""
    import plotly.graph_objects as go

    counts, edges = np.histogram(probabilities, bins=20, range=(0.0, 1.0))
    figure = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=0.045,
                              hovertemplate="probability %{x:.3f}: %{y:,} images"
                                            "<extra></extra>"))
    return _layout(figure, "Confidence: the predicted label's probability", "probability",
                   "images")


def _dimension(rows: list[dict], name: str, log: bool) -> dict:
    values = [hyperparameter_text(row[name]) for row in rows]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        if log:
            ticks = sorted({10.0 ** k for k in range(math.floor(math.log10(min(values))),
                                                     math.ceil(math.log10(max(values))) + 1)})
            return {"label": f"{name} (log)", "values": [math.log10(v) for v in values],
                    "tickvals": [math.log10(t) for t in ticks],
                    "ticktext": [f"{t:g}" for t in ticks]}
        return {"label": name, "values": values}
    labels = sorted({str(v) for v in values})
    return {"label": name, "values": [labels.index(str(v)) for v in values],
            "tickvals": list(range(len(labels))), "ticktext": labels}
