"""A scoring run's ``report.html``: per-shard counts, the predicted-label distribution and the
failures by reason, rebuilt from the output folder's files alone.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from mnist_core import storage
from mnist_core.config import NUM_CLASSES
from mnist_core.html import bars, cell, escape, page


def scoring_page(manifest: pa.Table, failures: pa.Table, labels: pa.Array, out: str) -> str:
    """The HTML of a scoring run's report: shards, predicted labels, failures by reason."""
    shards = manifest.to_pylist()
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell(row[name])}</td>" for name in
                         ("path", "status", "rows", "failed_rows", "model_id", "scored_at"))
        + "</tr>" for row in shards)
    counts = Counter(labels.to_pylist())
    reasons = Counter(failures.column("reason").to_pylist()) if failures.num_rows else Counter()
    reason_rows = "".join(f"<tr><td>{escape(str(reason))}</td><td>{count}</td></tr>"
                          for reason, count in reasons.most_common())
    summary = (f"<p>{len(shards)} shards, {sum(r['rows'] for r in shards):,} images scored, "
               f"{sum(r['failed_rows'] for r in shards):,} rejected; models: "
               f"{escape(', '.join(sorted({r['model_id'] for r in shards})))}</p>")
    return page(f"Scoring {out}", [
        summary,
        "<h2>Predicted labels</h2>" + bars({str(k): counts.get(k, 0) for k in range(NUM_CLASSES)}),
        "<h2>Shards</h2><div class=wrap><table class=sortable><thead><tr><th>shard</th>"
        "<th>status</th><th>rows</th><th>rejected</th><th>model</th><th>scored at</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></div>",
        "<h2>Failures by reason</h2>" + (
            f"<table class=sortable><thead><tr><th>reason</th><th>count</th></tr></thead>"
            f"<tbody>{reason_rows}</tbody></table>" if reason_rows else "<p>none</p>"),
    ])


def write_scoring_report(out: str) -> str:
    """Build ``<out>/report.html`` from a scoring run's files; return its location."""
    from mnist_core.scoring.manifest import FAILURES_SCHEMA, MANIFEST_SCHEMA

    manifest = _table_or_empty(storage.join(out, "manifest.parquet"), MANIFEST_SCHEMA)
    failures = _table_or_empty(storage.join(out, "failures.parquet"), FAILURES_SCHEMA)
    labels = [_labels(row["output"]) for row in manifest.to_pylist()
              if storage.exists(row["output"])]
    text = scoring_page(manifest, failures,
                        pa.concat_arrays(labels) if labels else pa.array([], pa.int32()), out)
    location = storage.join(out, "report.html")
    storage.write_bytes(location, text.encode())
    return location


def _labels(location: str) -> pa.Array:
    import pyarrow.parquet as pq

    data = pa.BufferReader(storage.read_bytes(location))
    return pq.read_table(data, columns=["predicted_label"]).column(0).combine_chunks()


def _table_or_empty(location: str, schema: pa.Schema) -> pa.Table:
    return storage.read_table(location) if storage.exists(location) else schema.empty_table()
