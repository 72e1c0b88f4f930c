"""A sweep's ``report.html``: summary, every trial in a sortable table, the best trial's
confusion matrix and learning curves, validation accuracy against each swept hyperparameter, and
a parallel-coordinates view of all trials. Rebuilt from the sweep's files alone (``python -m
jobs.report FOLDER``), so old sweeps and running ones get pages too.
"""

from __future__ import annotations

import math
from collections import Counter

import pyarrow as pa

from mnist_core import storage
from mnist_core.html import axes, cell, confusion, escape, page, svg_lines
from mnist_core.reports import best_trial


def sweep_page(tables: dict[str, pa.Table], sweep_id: str, config_text: str,
               swept: list[str]) -> str:
    """The HTML of a sweep's report from its tables (``sweep_report.read_sweep``)."""
    trials = tables["trials"].to_pylist()
    ok = [row for row in trials if row["status"] == "ok"]
    best = best_trial(trials)
    sections = [_sweep_summary(sweep_id, trials, best), _trials_table(trials, swept)]
    if best is not None:
        sections.append(_best_trial(tables, best))
    if ok and swept:
        sections.append("<h2>Validation accuracy per hyperparameter</h2><div class=grid>"
                        + "".join(_scatter(ok, name) for name in swept) + "</div>")
        sections.append("<h2>All trials, parallel coordinates</h2>"
                        + _parallel_coordinates(ok, swept))
    sections.append(f"<h2>Config</h2><pre>{escape(config_text)}</pre>")
    return page(f"Sweep {sweep_id}", sections)


def _sweep_summary(sweep_id: str, trials: list[dict], best: dict | None) -> str:
    counts = Counter(row["status"] for row in trials)
    statuses = ", ".join(f"<span class={status}>{counts[status]} {status}</span>"
                         for status in ("ok", "pruned", "failed") if counts[status])
    dataset = trials[0]["dataset"] if trials else "?"
    chosen = ("" if best is None else
              f"<p>Best by validation accuracy: <b>{cell(best['trial_id'])}</b> — validation "
              f"{best['val_accuracy']:.4f}, test {best['test_accuracy']:.4f} "
              f"(epoch {best['best_epoch']} of {best['epochs']}).</p>")
    return (f"<p>{len(trials)} trials on {escape(str(dataset))}: {statuses}. The test set "
            f"chooses nothing.</p>{chosen}")


def _trials_table(trials: list[dict], swept: list[str]) -> str:
    columns = ["trial_id", "status", *swept, "best_epoch", "val_accuracy", "test_accuracy",
               "train_seconds", "pack_id", "error"]
    head = "".join(f"<th>{name}</th>" for name in columns)
    body = "".join(
        f'<tr class="{cell(row["status"])}">' + "".join(f"<td>{cell(row.get(name))}</td>"
                                                 for name in columns) + "</tr>"
        for row in trials)
    return (f"<h2>Trials</h2><p>Click a header to sort.</p><div class=wrap>"
            f"<table class=sortable id=trials><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _best_trial(tables: dict[str, pa.Table], best: dict) -> str:
    trial_id = best["trial_id"]
    cells = [row for row in tables["confusion"].to_pylist() if row["trial_id"] == trial_id]
    epochs = [row for row in tables["epochs"].to_pylist() if row["trial_id"] == trial_id]
    return (f"<h2>Best trial {cell(trial_id)}</h2><div class=grid><div class=card>"
            f"<b>Confusion matrix (test; rows true, columns predicted)</b>{confusion(cells)}"
            f"</div><div class=card><b>Learning curves</b>{_curves(epochs)}</div></div>")


def _curves(epochs: list[dict]) -> str:
    series = {name: [row[name] for row in epochs] for name in
              ("accuracy", "val_accuracy") if epochs and epochs[0].get(name) is not None}
    return svg_lines(series, "epoch", "accuracy")


def _scatter(rows: list[dict], name: str) -> str:
    width, height, pad = 300, 220, 36
    xs, labels = _positions([row[name] for row in rows])
    ys = [row["val_accuracy"] for row in rows]
    low, high = min(ys), max(ys)
    span = (high - low) or 1.0
    left, right = min(xs), max(xs)
    x_span = (right - left) or 1.0
    dots = "".join(
        f'<circle cx="{pad + (width - 2 * pad) * (x - left) / x_span:.1f}" '
        f'cy="{height - pad - (height - 2 * pad) * (y - low) / span:.1f}" r="3" '
        f'fill="#0969da" fill-opacity="0.6"><title>{escape(row["trial_id"])}: '
        f'{escape(cell(row[name]))} → {y:.4f}</title></circle>'
        for x, y, row in zip(xs, ys, rows))
    return (f'<div class=card><svg class=chart width="{width}" height="{height}">'
            f'{axes(width, height, pad)}{dots}<text x="{pad}" y="{height - 8}">'
            f'{escape(name)}{labels}</text><text x="4" y="14">validation accuracy '
            f'{low:.3f}–{high:.3f}</text></svg></div>')


def _positions(values: list) -> tuple[list[float], str]:
    """Numbers for a hyperparameter's values (log10 for wide positive ranges, category index
    otherwise) and a note on the scale."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        if min(values) > 0 and max(values) / min(values) > 100:
            return [math.log10(v) for v in values], " (log scale)"
        return [float(v) for v in values], ""
    labels = sorted({cell(v) for v in values})
    return [float(labels.index(cell(v))) for v in values], f" ({', '.join(labels)})"


def _parallel_coordinates(rows: list[dict], swept: list[str]) -> str:
    axes = [*swept, "val_accuracy"]
    width, height, pad = max(160 * len(axes), 480), 300, 40
    columns = {name: _unit(_positions([row[name] for row in rows])[0]) for name in axes}
    step = (width - 2 * pad) / max(len(axes) - 1, 1)
    accuracy = columns["val_accuracy"]

    def y(name: str, index: int) -> float:
        return height - pad - (height - 2 * pad) * columns[name][index]

    lines = "".join(
        '<polyline fill="none" stroke-opacity="0.5" stroke="hsl('
        f'{int(240 * (1 - accuracy[index]))},70%,45%)" points="'
        + " ".join(f"{pad + step * a:.1f},{y(name, index):.1f}" for a, name in enumerate(axes))
        + f'"><title>{escape(row["trial_id"])}</title></polyline>'
        for index, row in enumerate(rows))
    ticks = "".join(
        f'<line x1="{pad + step * a}" y1="{pad}" x2="{pad + step * a}" y2="{height - pad}" '
        f'stroke="#999"/><text x="{pad + step * a - 30}" y="{height - 12}">{escape(n)}</text>'
        for a, n in enumerate(axes))
    return (f'<div class=wrap><svg class=chart id=parallel width="{width}" height="{height}">'
            f"{ticks}{lines}</svg></div><p>One line per ok trial; colour from blue (low) to "
            "red (high) validation accuracy; each axis spans that column's range.</p>")


def _unit(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    return [(v - low) / (high - low) if high > low else 0.5 for v in values]


def write_sweep_report(folder: str) -> str:
    """Build ``<folder>/report.html`` from a sweep's files; return its location."""
    from mnist_core.sweep.config import parse_sweep_config
    from mnist_core.sweep.store import read_sweep

    text = storage.read_bytes(storage.join(folder, "sweep.toml")).decode()
    markup = sweep_page(read_sweep(folder), storage.name(folder), text,
                        parse_sweep_config(text).grid_names)
    location = storage.join(folder, "report.html")
    storage.write_bytes(location, markup.encode())
    return location
