"""The pieces every ``report.html`` is built from: the page shell, inline SVG charts, escaping.

A page opens from disk with no server and no network: charts are inline SVG, styles are
inline, and the only script sorts a table when a header is clicked. Every value that reaches
a page goes through ``cell`` (or ``escape``), which escapes it, so a string from a report file
can never become markup. The sweep's page lives in ``sweep/page.py``, the scoring run's in
``scoring/page.py``.
"""

from __future__ import annotations

import html

from mnist_core.config import NUM_CLASSES

escape = html.escape

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


def page(title: str, sections: list[str]) -> str:
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>"
            f"{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{''.join(sections)}<script>{_SORT}</script>"
            "</body></html>")


def confusion(cells: list[dict]) -> str:
    counts = {(row["true_label"], row["predicted_label"]): row["count"] for row in cells}
    top = max(counts.values(), default=1) or 1
    rows = ""
    for true in range(NUM_CLASSES):
        row = ""
        for predicted in range(NUM_CLASSES):
            count = counts.get((true, predicted), 0)
            shade = int(255 - 200 * count / top)
            ink = "#fff" if count > top / 2 else "#000"
            row += f'<td style="background:rgb({shade},{shade},255);color:{ink}">{count}</td>'
        rows += f"<tr><th>{true}</th>{row}</tr>"
    head = "".join(f"<th>{label}</th>" for label in range(NUM_CLASSES))
    return f"<table class=cm><tr><th></th>{head}</tr>{rows}</table>"


def svg_lines(series: dict[str, list[float]], x_label: str, y_label: str) -> str:
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
    return (f'<svg class=chart width="{width}" height="{height}">{axes(width, height, pad)}'
            f'{paths}{legend}<text x="{width / 2}" y="{height - 6}">{x_label}</text>'
            f'<text x="4" y="{pad - 8}">{y_label} {low:.3f}–{high:.3f}</text></svg>')


def axes(width: int, height: int, pad: int) -> str:
    return (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
            f'stroke="#888"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" '
            f'stroke="#888"/>')


def bars(counts: dict[str, int]) -> str:
    width, height, pad = 460, 220, 30
    top = max(counts.values(), default=0) or 1
    bar = (width - 2 * pad) / max(len(counts), 1)
    rects = "".join(
        f'<rect x="{pad + bar * i + 2:.1f}" y="{height - pad - (height - 2 * pad) * c / top:.1f}"'
        f' width="{bar - 4:.1f}" height="{(height - 2 * pad) * c / top:.1f}" fill="#0969da">'
        f"<title>label {label}: {c}</title></rect>"
        f'<text x="{pad + bar * i + bar / 2 - 4:.1f}" y="{height - 10}">{label}</text>'
        for i, (label, c) in enumerate(counts.items()))
    return (f'<svg class=chart width="{width}" height="{height}">{axes(width, height, pad)}'
            f"{rects}</svg>")


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(map(str, value))
    return html.escape(str(value))
