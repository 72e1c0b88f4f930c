"""The pieces every ``report.html`` is built from: the page shell, Plotly figures, tables.

A page opens from disk with no server and no network: charts are Plotly figures drawn by
plotly.js, written once beside the page (``plotly.min.js``, from the plotly package), and
tables are built in the browser from JSON with ``textContent``, never as markup. Every value
that reaches a page is escaped by construction: markup with values in it is made by
``markup`` (every field formatted, then escaped, whatever its type: a number field read back
from a damaged ``best.json`` that holds a string renders as that string's text), and JSON by
``json_script`` (``<`` written as ``\\u003c``, so no string can close a tag). The sweep's
page lives in ``sweep/page.py``, the scoring run's in ``scoring/page.py``.
"""

from __future__ import annotations

import html
import json
import string
from pathlib import Path

from mnist_core import storage
from mnist_core.errors import RecordingError

PLOTLY_JS = "plotly.min.js"
escape = html.escape

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1280px;color:#222;
padding:0 12px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}td,th{padding:3px 7px;border:1px solid #e3e3e3}
th{background:#f4f4f4;cursor:pointer;position:sticky;top:0;white-space:nowrap}
tr:nth-child(even){background:#fafafa}.wrap{overflow:auto;max-height:560px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.ok{color:#1a7f37}.pruned{color:#9a6700}.failed,.diverged{color:#cf222e}
.live{background:#fff8c5;padding:6px 10px;border:1px solid #d4a72c}
.controls{margin:6px 0;display:flex;gap:12px;align-items:center}pre{background:#f6f8fa;padding:8px}
"""
_SCRIPT = """
function drawFigure(holder) {
  const figure = JSON.parse(holder.textContent);
  const target = document.getElementById(holder.dataset.target);
  if (window.Plotly) { Plotly.newPlot(target, figure.data, figure.layout, {responsive: true}); }
  else { target.textContent = "plotly.min.js is missing beside this page: charts not drawn"; }
}
// Charts are drawn as they come into view (all at once with #all in the address).
const holders = Array.from(document.querySelectorAll("script.figure"));
if (location.hash === "#all" || !("IntersectionObserver" in window)) {
  holders.forEach(drawFigure);
} else {
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) { continue; }
      observer.unobserve(entry.target);
      drawFigure(holders.find((h) => h.dataset.target === entry.target.id));
    }
  }, {rootMargin: "300px"});
  holders.forEach((h) => observer.observe(document.getElementById(h.dataset.target)));
}
for (const holder of document.querySelectorAll("script.table-data")) {
  const spec = JSON.parse(holder.textContent);
  const root = document.getElementById(holder.dataset.target);
  const state = {key: spec.sort, ascending: false, status: "", search: ""};
  const controls = document.createElement("div");
  controls.className = "controls";
  const filter = document.createElement("select");
  for (const status of ["", ...spec.statuses]) {
    const option = document.createElement("option");
    option.value = status; option.textContent = status || "every status";
    filter.appendChild(option);
  }
  const search = document.createElement("input");
  search.type = "search"; search.placeholder = "search"; search.id = root.id + "-search";
  const shown = document.createElement("span");
  if (spec.statuses.length) { controls.append("status ", filter); }
  controls.append(search, shown);
  const table = document.createElement("table");
  table.id = root.id + "-table";
  const head = table.createTHead().insertRow();
  const body = table.createTBody();
  spec.columns.forEach((name) => {
    const th = document.createElement("th");
    th.dataset.key = name;
    th.addEventListener("click", () => {
      state.ascending = state.key === name ? !state.ascending : false;
      state.key = name; draw();
    });
    head.appendChild(th);
  });
  function value(row, name) {
    const v = row[name]; return v === null || v === undefined ? "" : v;
  }
  function draw() {
    const needle = state.search.toLowerCase();
    const rows = spec.rows.filter((row) => (!state.status || row.status === state.status)
      && (!needle || spec.columns.some(
        (c) => String(value(row, c)).toLowerCase().includes(needle))));
    rows.sort((a, b) => {
      const x = value(a, state.key), y = value(b, state.key);
      const order = (typeof x === "number" && typeof y === "number") ? x - y
        : String(x).localeCompare(String(y));
      return state.ascending ? order : -order;
    });
    for (const th of head.cells) {
      th.textContent = th.dataset.key + (th.dataset.key === state.key
        ? (state.ascending ? " \\u25b2" : " \\u25bc") : "");
    }
    body.replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      tr.className = row.diverged ? "diverged" : String(row.status);
      for (const name of spec.columns) {
        const td = tr.insertCell();
        const v = value(row, name);
        td.textContent = typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : v;
      }
      return tr;
    }));
    shown.textContent =
      `${rows.length.toLocaleString()} of ${spec.rows.length.toLocaleString()} shown`;
  }
  filter.addEventListener("change", () => { state.status = filter.value; draw(); });
  search.addEventListener("input", () => { state.search = search.value; draw(); });
  root.append(controls, Object.assign(document.createElement("div"), {className: "wrap"}));
  root.lastChild.appendChild(table);
  draw();
}
"""


class _LenientFormatter(string.Formatter):
    """``str.format`` where a value of another type than its field expects (a string where
    ``{:.4f}`` wants a number) is written as its text, and a part a damaged record lacks
    (``{0[mean]}`` of a record without ``mean``) as ``?``, instead of raising."""

    def get_field(self, field_name, args, kwargs):
        try:
            return super().get_field(field_name, args, kwargs)
        except (LookupError, TypeError, AttributeError):
            return "?", field_name

    def format_field(self, value, format_spec: str) -> str:
        try:
            return format(value, format_spec)
        except (TypeError, ValueError):
            return str(value)


class _EscapingFormatter(_LenientFormatter):
    def format_field(self, value, format_spec: str) -> str:
        return escape(super().format_field(value, format_spec))


_TEXT, _MARKUP = _LenientFormatter(), _EscapingFormatter()


def text(template: str, *args, **values) -> str:
    """``template.format(...)`` for plain text made of values read back from disk: a value of
    an unexpected type is written as its text, never a traceback."""
    return _TEXT.format(template, *args, **values)


def markup(template: str, *args, **values) -> str:
    """``text`` with every replacement field escaped after formatting: the one way values
    enter a page's markup (``markup("<b>{id}</b> {score:.4f}", ...)``)."""
    return _MARKUP.format(template, *args, **values)


def json_script(data, css_class: str, target: str) -> str:
    """``data`` as a JSON ``<script>`` the page's script reads; ``<`` is written ``\\u003c``, so
    no string in it can end the script or start a tag."""
    text = json.dumps(data, default=str, separators=(",", ":")).replace("<", "\\u003c")
    return (f'<script type="application/json" class="{css_class}" data-target="{target}">'
            f"{text}</script>")


def figure(chart, target: str) -> str:
    """A Plotly figure: a ``div`` and its JSON, drawn by plotly.js when the page loads."""
    return (f'<div id="{target}" style="min-height:360px"></div>'
            + json_script(json.loads(chart.to_json()), "figure", target))


def table(target: str, columns: list[str], rows: list[dict], statuses: list[str],
          sort: str) -> str:
    """A table built in the browser: a status filter, a search box, sorting by any column."""
    data = {"columns": columns, "rows": rows, "statuses": statuses, "sort": sort}
    return f'<div id="{target}"></div>' + json_script(data, "table-data", target)


def page(title: str, sections: list[str], live: bool = False) -> str:
    """The whole page; ``live`` reloads it every 5 s (a sweep that is still running)."""
    refresh = '<meta http-equiv="refresh" content="5">' if live else ""
    banner = ('<p class="live">Live: this page is rebuilt while the sweep runs and reloads '
              "itself every 5 s.</p>" if live else "")
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>{refresh}<title>"
            f"{escape(title)}</title><style>{_STYLE}</style>"
            f'<script src="{PLOTLY_JS}"></script></head><body>'
            f"<h1>{escape(title)}</h1>{banner}{''.join(sections)}<script>{_SCRIPT}</script>"
            "</body></html>")


def write_page(folder: str, html: str) -> str:
    """Write ``<folder>/report.html`` and, once, plotly.js beside it; return the page's
    location. A failed write (a full disk) is a ``RecordingError`` naming the file; the
    page it would have replaced stays whole (writes are atomic)."""
    script = storage.join(folder, PLOTLY_JS)
    location = storage.join(folder, "report.html")
    if not storage.exists(script):
        import plotly

        bundle = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
        _write(script, bundle.read_bytes())
    _write(location, html.encode())
    return location


def _write(location: str, data: bytes) -> None:
    try:
        storage.write_bytes(location, data)
    except OSError as error:
        reason = error.strerror or str(error).splitlines()[0]
        raise RecordingError(f"{location}: {reason}; the page was not written") from None
