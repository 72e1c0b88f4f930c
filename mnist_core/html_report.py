"""``report.html``: one self-contained page per sweep or scoring run, built from its Parquet.

The page opens from disk with no server and no network: charts are inline SVG drawn here,
styles are inline, and the only script sorts the trials table when a header is clicked. A
sweep's page has a summary, every trial in a sortable table, the best trial's confusion matrix
and learning curves, validation accuracy against each swept hyperparameter, and a
parallel-coordinates view of all trials. A scoring run's page has per-shard counts, the
predicted-label distribution and the failures by reason. Both are rebuilt from the files
alone (``python -m jobs.report FOLDER``), so old sweeps and running ones get pages too.
"""

from __future__ import annotations

import html
import math
from collections import Counter

import pyarrow as pa

from mnist_core import storage

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}td,th{padding:3px 7px;border:1px solid #e3e3e3}
th{background:#f4f4f4;cursor:pointer;position:sticky;top:0}tr:nth-child(even){background:#fafafa}
.cm td{width:34px;text-align:center;border:1px solid #fff}.wrap{overflow:auto;max-height:520px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #eee;padding:8px}
.ok{color:#1a7f37}.pruned{color:#9a6700}.failed{color:#cf222e}pre{background:#f6f8fa;padding:8px}
"""
_SORT = """
document.querySelectorAll("table.sortable th").forEach((th, column) => {
  th.addEventListener("click", () => {
    const body = th.closest("table").tBodies[0];
    const rows = Array.from(body.rows);
    const up = th.dataset.order !== "asc";
    th.dataset.order = up ? "asc" : "desc";
    const key = (row) => { const t = row.cells[column].textContent; const n = parseFloat(t);
                           return isNaN(n) ? t : n; };
    rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1));
    rows.forEach((row) => body.appendChild(row));
  });
});
"""


def sweep_page(tables: dict[str, pa.Table], sweep_id: str, config_text: str,
               swept: list[str]) -> str:
    """The HTML of a sweep's report from its tables (``sweep_report.read_sweep``)."""
    trials = tables["trials"].to_pylist()
    ok = [row for row in trials if row["status"] == "ok"]
    best = max(ok, key=lambda row: row["val_accuracy"], default=None)
    sections = [_sweep_summary(sweep_id, trials, best), _trials_table(trials, swept)]
    if best is not None:
        sections.append(_best_trial(tables, best))
    if ok and swept:
        sections.append("<h2>Validation accuracy per hyperparameter</h2><div class=grid>"
                        + "".join(_scatter(ok, name) for name in swept) + "</div>")
        sections.append("<h2>All trials, parallel coordinates</h2>"
                        + _parallel_coordinates(ok, swept))
    sections.append(f"<h2>Config</h2><pre>{html.escape(config_text)}</pre>")
    return _page(f"Sweep {sweep_id}", sections)


def scoring_page(manifest: pa.Table, failures: pa.Table, labels: pa.Array, out: str) -> str:
    """The HTML of a scoring run's report: shards, predicted labels, failures by reason."""
    shards = manifest.to_pylist()
    rows = "".join(
        f"<tr><td>{html.escape(row['path'])}</td><td>{row['status']}</td><td>{row['rows']}</td>"
        f"<td>{row['failed_rows']}</td><td>{row['model_id']}</td><td>{row['scored_at']}</td></tr>"
        for row in shards)
    counts = Counter(labels.to_pylist())
    reasons = Counter(failures.column("reason").to_pylist()) if failures.num_rows else Counter()
    reason_rows = "".join(f"<tr><td>{html.escape(str(reason))}</td><td>{count}</td></tr>"
                          for reason, count in reasons.most_common())
    summary = (f"<p>{len(shards)} shards, {sum(r['rows'] for r in shards):,} images scored, "
               f"{sum(r['failed_rows'] for r in shards):,} rejected; models: "
               f"{html.escape(', '.join(sorted({r['model_id'] for r in shards})))}</p>")
    return _page(f"Scoring {out}", [
        summary,
        "<h2>Predicted labels</h2>" + _bars({str(k): counts.get(k, 0) for k in range(10)}),
        "<h2>Shards</h2><div class=wrap><table class=sortable><thead><tr><th>shard</th>"
        "<th>status</th><th>rows</th><th>rejected</th><th>model</th><th>scored at</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></div>",
        "<h2>Failures by reason</h2>" + (
            f"<table class=sortable><thead><tr><th>reason</th><th>count</th></tr></thead>"
            f"<tbody>{reason_rows}</tbody></table>" if reason_rows else "<p>none</p>"),
    ])


def _page(title: str, sections: list[str]) -> str:
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>"
            f"{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{''.join(sections)}<script>{_SORT}</script>"
            "</body></html>")


def _sweep_summary(sweep_id: str, trials: list[dict], best: dict | None) -> str:
    counts = Counter(row["status"] for row in trials)
    statuses = ", ".join(f"<span class={status}>{counts[status]} {status}</span>"
                         for status in ("ok", "pruned", "failed") if counts[status])
    dataset = trials[0]["dataset"] if trials else "?"
    chosen = ("" if best is None else
              f"<p>Best by validation accuracy: <b>{best['trial_id']}</b> — validation "
              f"{best['val_accuracy']:.4f}, test {best['test_accuracy']:.4f} "
              f"(epoch {best['best_epoch']} of {best['epochs']}).</p>")
    return (f"<p>{len(trials)} trials on {html.escape(str(dataset))}: {statuses}. The test set "
            f"chooses nothing.</p>{chosen}")


def _trials_table(trials: list[dict], swept: list[str]) -> str:
    columns = ["trial_id", "status", *swept, "best_epoch", "val_accuracy", "test_accuracy",
               "train_seconds", "pack_id", "error"]
    head = "".join(f"<th>{name}</th>" for name in columns)
    body = "".join(
        f"<tr class={row['status']}>" + "".join(f"<td>{_cell(row.get(name))}</td>"
                                                 for name in columns) + "</tr>"
        for row in trials)
    return (f"<h2>Trials</h2><p>Click a header to sort.</p><div class=wrap>"
            f"<table class=sortable id=trials><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _best_trial(tables: dict[str, pa.Table], best: dict) -> str:
    trial_id = best["trial_id"]
    cells = [row for row in tables["confusion"].to_pylist() if row["trial_id"] == trial_id]
    epochs = [row for row in tables["epochs"].to_pylist() if row["trial_id"] == trial_id]
    return (f"<h2>Best trial {trial_id}</h2><div class=grid><div class=card>"
            f"<b>Confusion matrix (test; rows true, columns predicted)</b>{_confusion(cells)}"
            f"</div><div class=card><b>Learning curves</b>{_curves(epochs)}</div></div>")


def _confusion(cells: list[dict]) -> str:
    counts = {(row["true_label"], row["predicted_label"]): row["count"] for row in cells}
    top = max(counts.values(), default=1) or 1
    rows = ""
    for true in range(10):
        row = ""
        for predicted in range(10):
            count = counts.get((true, predicted), 0)
            shade = int(255 - 200 * count / top)
            ink = "#fff" if count > top / 2 else "#000"
            row += f'<td style="background:rgb({shade},{shade},255);color:{ink}">{count}</td>'
        rows += f"<tr><th>{true}</th>{row}</tr>"
    head = "".join(f"<th>{label}</th>" for label in range(10))
    return f"<table class=cm><tr><th></th>{head}</tr>{rows}</table>"


def _curves(epochs: list[dict]) -> str:
    series = {name: [row[name] for row in epochs] for name in
              ("accuracy", "val_accuracy") if epochs and epochs[0].get(name) is not None}
    return _svg_lines(series, "epoch", "accuracy")


def _svg_lines(series: dict[str, list[float]], x_label: str, y_label: str) -> str:
    width, height, pad = 420, 260, 40
    values = [v for line in series.values() for v in line if v is not None]
    if not values:
        return "<p>no epochs recorded</p>"
    low, high = min(values), max(values)
    span, count = (high - low) or 1.0, max(len(line) for line in series.values())
    colours = ["#0969da", "#cf222e"]
    paths = ""
    for (name, line), colour in zip(series.items(), colours):
        points = " ".join(
            f"{pad + (width - 2 * pad) * i / max(count - 1, 1):.1f},"
            f"{height - pad - (height - 2 * pad) * (v - low) / span:.1f}"
            for i, v in enumerate(line))
        paths += (f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                  f'points="{points}"><title>{name}</title></polyline>')
    legend = "".join(f'<text x="{pad + 120 * i}" y="14" fill="{c}">{n}</text>'
                     for i, (n, c) in enumerate(zip(series, colours)))
    return (f'<svg class=chart width="{width}" height="{height}">{_axes(width, height, pad)}'
            f'{paths}{legend}<text x="{width / 2}" y="{height - 6}">{x_label}</text>'
            f'<text x="4" y="{pad - 8}">{y_label} {low:.3f}–{high:.3f}</text></svg>')


def _axes(width: int, height: int, pad: int) -> str:
    return (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
            f'stroke="#888"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" '
            f'stroke="#888"/>')


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
        f'fill="#0969da" fill-opacity="0.6"><title>{html.escape(row["trial_id"])}: '
        f'{html.escape(_cell(row[name]))} → {y:.4f}</title></circle>'
        for x, y, row in zip(xs, ys, rows))
    return (f'<div class=card><svg class=chart width="{width}" height="{height}">'
            f'{_axes(width, height, pad)}{dots}<text x="{pad}" y="{height - 8}">'
            f'{html.escape(name)}{labels}</text><text x="4" y="14">validation accuracy '
            f'{low:.3f}–{high:.3f}</text></svg></div>')


def _positions(values: list) -> tuple[list[float], str]:
    """Numbers for a hyperparameter's values (log10 for wide positive ranges, category index
    otherwise) and a note on the scale."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        if min(values) > 0 and max(values) / min(values) > 100:
            return [math.log10(v) for v in values], " (log scale)"
        return [float(v) for v in values], ""
    labels = sorted({_cell(v) for v in values})
    return [float(labels.index(_cell(v))) for v in values], f" ({', '.join(labels)})"


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
        + f'"><title>{html.escape(row["trial_id"])}</title></polyline>'
        for index, row in enumerate(rows))
    ticks = "".join(
        f'<line x1="{pad + step * a}" y1="{pad}" x2="{pad + step * a}" y2="{height - pad}" '
        f'stroke="#999"/><text x="{pad + step * a - 30}" y="{height - 12}">{html.escape(n)}</text>'
        for a, n in enumerate(axes))
    return (f'<div class=wrap><svg class=chart id=parallel width="{width}" height="{height}">'
            f"{ticks}{lines}</svg></div><p>One line per ok trial; colour from blue (low) to "
            "red (high) validation accuracy; each axis spans that column's range.</p>")


def _unit(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    return [(v - low) / (high - low) if high > low else 0.5 for v in values]


def _bars(counts: dict[str, int]) -> str:
    width, height, pad = 460, 220, 30
    top = max(counts.values(), default=0) or 1
    bar = (width - 2 * pad) / max(len(counts), 1)
    rects = "".join(
        f'<rect x="{pad + bar * i + 2:.1f}" y="{height - pad - (height - 2 * pad) * c / top:.1f}"'
        f' width="{bar - 4:.1f}" height="{(height - 2 * pad) * c / top:.1f}" fill="#0969da">'
        f"<title>label {label}: {c}</title></rect>"
        f'<text x="{pad + bar * i + bar / 2 - 4:.1f}" y="{height - 10}">{label}</text>'
        for i, (label, c) in enumerate(counts.items()))
    return (f'<svg class=chart width="{width}" height="{height}">{_axes(width, height, pad)}'
            f"{rects}</svg>")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(map(str, value))
    return html.escape(str(value))


def write_sweep_report(folder: str) -> str:
    """Build ``<folder>/report.html`` from a sweep's files; return its location."""
    from mnist_core.sweep_config import parse_sweep_config
    from mnist_core.sweep_report import read_sweep

    text = storage.read_bytes(storage.join(folder, "sweep.toml")).decode()
    page = sweep_page(read_sweep(folder), storage.name(folder), text,
                      parse_sweep_config(text).grid_names)
    location = storage.join(folder, "report.html")
    storage.write_bytes(location, page.encode())
    return location


def write_scoring_report(out: str) -> str:
    """Build ``<out>/report.html`` from a scoring run's files; return its location."""
    from mnist_core.manifest import FAILURES_SCHEMA, MANIFEST_SCHEMA

    manifest = _table_or_empty(storage.join(out, "manifest.parquet"), MANIFEST_SCHEMA)
    failures = _table_or_empty(storage.join(out, "failures.parquet"), FAILURES_SCHEMA)
    labels = [_labels(row["output"]) for row in manifest.to_pylist()
              if storage.exists(row["output"])]
    page = scoring_page(manifest, failures,
                        pa.concat_arrays(labels) if labels else pa.array([], pa.int32()), out)
    location = storage.join(out, "report.html")
    storage.write_bytes(location, page.encode())
    return location


def _labels(location: str) -> pa.Array:
    import pyarrow.parquet as pq

    data = pa.BufferReader(storage.read_bytes(location))
    return pq.read_table(data, columns=["predicted_label"]).column(0).combine_chunks()


def _table_or_empty(location: str, schema: pa.Schema) -> pa.Table:
    return storage.read_table(location) if storage.exists(location) else schema.empty_table()

