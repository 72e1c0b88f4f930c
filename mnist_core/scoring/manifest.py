"""The scoring job's ledger: which shards are scored (``manifest.parquet``) and what failed.

A shard enters the manifest only after its predictions file is complete (written atomically),
so the manifest is the truth about what is done: a rerun scores exactly the shards that are
missing from it, whose content changed (a new SHA-256), or that another model scored (each
entry records the model's id and location), and replaces their old output. So when the model
changes, every shard is rescored, and once a run completes every prediction comes from it.
A shard whose size and modification time match its entry is taken as unchanged without
re-hashing, as make and rsync do. ``failures.parquet`` holds one row per rejected image or
unreadable shard, with the reason; a rescored shard's old failures are replaced. A shard with
rejected rows is scored again when its content or the model changes, or when a run asks for
it (``--retry-failed``); until then every run counts its rejected rows (``held``).

Readers never see uncommitted rows: a shard's predictions are staged outside ``predictions/``
and moved in by ``commit`` just before the manifest names them; ``recover``, at the start of
the next run, removes what a crash left between those two steps. A shard that yields no
prediction has no file, so it sets no id type for the folder.

One prediction per id across the whole output folder (``IdClaims``): an id that another
shard's committed predictions already hold — in this run or an earlier one — is a rejected
row of the later shard, and a shard whose ids are of another type than the folder's (integers
where the folder holds strings, say) is rejected whole. The driver holds every committed id
once in memory (about 100 bytes each).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from mnist_core import storage
from mnist_core.scoring.scorer import (
    PREDICTIONS,
    STAGING,
    RejectedRow,
    ShardResult,
    output_path,
)
from mnist_core.scoring.shards import Shard, content_hash

MANIFEST_SCHEMA = pa.schema([
    pa.field("path", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("size", pa.int64()),
    pa.field("mtime_ns", pa.int64()),
    pa.field("content_hash", pa.string()),
    pa.field("shard", pa.string()),
    pa.field("output", pa.string()),
    pa.field("status", pa.string()),
    pa.field("rows", pa.int64()),
    pa.field("failed_rows", pa.int64()),
    pa.field("model_id", pa.string()),
    pa.field("model", pa.string()),
    pa.field("scored_at", pa.timestamp("s", tz="UTC")),
])
FAILURES_SCHEMA = pa.schema([
    pa.field("source", pa.string()),
    pa.field("shard", pa.string()),
    pa.field("id", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("model_id", pa.string()),
    pa.field("recorded_at", pa.timestamp("s", tz="UTC")),
])


class Manifest:
    """The manifest and failures of one output folder, rewritten atomically on every commit.
    Open it only while holding the folder's lock."""

    def __init__(self, out: str):
        self.out = out
        self.manifest_path = storage.join(out, "manifest.parquet")
        self.failures_path = storage.join(out, "failures.parquet")
        self.entries = {row["path"]: row for row in storage.read_rows(self.manifest_path)}
        self.failures = storage.read_rows(self.failures_path)

    def recover(self) -> None:
        """Remove what a run that died left uncommitted: its staged files, and files in
        ``predictions/`` that no entry names (moved there just before the crash)."""
        named = {f"shard={entry['shard']}" for entry in self.entries.values()
                 if entry["output"]}
        for entry in storage.list_files(storage.join(self.out, STAGING)):
            storage.remove(entry.location)
        for entry in storage.list_files(storage.join(self.out, PREDICTIONS)):
            folder = storage.name(storage.parent(entry.location))
            if folder.startswith("shard=") and folder not in named:
                storage.remove(entry.location)
        for folder in (STAGING, PREDICTIONS):
            storage.remove_empty_folders(storage.join(self.out, folder))

    def claims(self, pending: list[Shard]) -> IdClaims:
        """The ids that the committed outputs of every shard not in ``pending`` hold."""
        rescored = {shard.path for shard in pending}
        outputs = [entry["output"] for path, entry in sorted(self.entries.items())
                   if path not in rescored and entry["output"]
                   and storage.exists(entry["output"])]
        return IdClaims([storage.read_table(output).column("id") for output in outputs])

    def models(self) -> Counter:
        """How many shards each model (by id) scored, as the manifest stands now."""
        return Counter(entry["model_id"] for entry in self.entries.values())

    def pending(self, shards: list[Shard], model_id: str, retry_failed: bool = False
                ) -> list[Shard]:
        """The shards that need scoring with model ``model_id``: new ones, known ones whose
        content changed, known ones that another model scored and, with ``retry_failed``,
        those with rejected rows."""
        return [shard for shard in shards if self._stale(shard, model_id)
                or (retry_failed and self._rejected_any(shard))]

    def held(self, shards: list[Shard], model_id: str) -> FolderState:
        """What the folder holds from model ``model_id`` for ``shards``: predictions, rejected
        rows (an unreadable shard is one) and the three most common reasons."""
        paths = {shard.path for shard in shards}
        ours = [entry for path, entry in self.entries.items()
                if path in paths and entry["model_id"] == model_id]
        reasons = Counter(_reason_kind(row["reason"]) for row in self.failures
                          if row["source"] in paths and row["model_id"] == model_id)
        return FolderState(sum(entry["rows"] for entry in ours), len(ours),
                           sum(reasons.values()), tuple(reasons.most_common(3)))

    def _rejected_any(self, shard: Shard) -> bool:
        entry = self.entries.get(shard.path)
        return entry is not None and (entry["failed_rows"] > 0 or entry["status"] != "ok")

    def _stale(self, shard: Shard, model_id: str) -> bool:
        entry = self.entries.get(shard.path)
        if entry is None or entry.get("model_id") != model_id:
            return True
        if (entry["size"], entry["mtime_ns"]) == (shard.size, shard.mtime_ns):
            return False
        return entry["content_hash"] != content_hash(shard)

    def commit(self, shard: Shard, result: ShardResult, model_id: str, model: str) -> None:
        """Record ``shard`` as scored with its rejected rows: its staged predictions are moved
        into ``predictions/`` first, then the manifest names them; a shard with none has its
        old predictions removed once the manifest no longer names them."""
        output = output_path(self.out, shard) if result.staged else ""
        if result.staged:
            storage.move(result.staged, output)
        now = datetime.now(UTC).replace(microsecond=0)
        self.failures = [row for row in self.failures if row["source"] != shard.path]
        self.failures += [{"source": shard.path, "shard": shard.key, "id": rejected.id,
                           "reason": rejected.reason, "model_id": model_id,
                           "recorded_at": now} for rejected in result.rejected]
        storage.write_rows(self.failures_path, self.failures, FAILURES_SCHEMA)
        self.entries[shard.path] = {
            "path": shard.path, "kind": shard.kind, "size": shard.size,
            "mtime_ns": shard.mtime_ns, "content_hash": result.content_hash,
            "shard": shard.key, "output": output,
            "status": "ok" if result.readable else "failed", "rows": result.rows,
            "failed_rows": len(result.rejected), "model_id": model_id, "model": model,
            "scored_at": now,
        }
        storage.write_rows(self.manifest_path, list(self.entries.values()), MANIFEST_SCHEMA)
        if not output:
            storage.remove(output_path(self.out, shard))
            storage.remove_empty_folders(storage.parent(output_path(self.out, shard)))


@dataclass(frozen=True)
class FolderState:
    """What an output folder holds from one model for a set of shards."""

    images: int
    shards: int
    rejected: int
    reasons: tuple[tuple[str, int], ...]  # (reason, rows), most common first


def _reason_kind(reason: str) -> str:
    """A rejection reason without the id it names, so that rows rejected alike count as one
    reason (``duplicate id 'x7': ...`` -> ``duplicate id: ...``)."""
    if reason.startswith("duplicate id "):
        return "duplicate id:" + reason.split(":", 1)[1]
    return reason


class IdClaims:
    """Every id the output folder holds a prediction for, and their type (strings or int64):
    set by the first shard that yields a prediction, never by one that yields none."""

    def __init__(self, committed: list[pa.ChunkedArray]):
        committed = [ids for ids in committed if len(ids)]
        self.id_type = committed[0].type if committed else None
        self.seen: set = set()
        for ids in committed:
            self.seen.update(ids.to_pylist())

    def settle(self, result: ShardResult) -> ShardResult:
        """``result`` with the rows whose ids are taken (or of the wrong type) moved from its
        staged predictions to its rejected rows; the file is rewritten only when that
        happens, and removed when no row is left."""
        if not result.rows:
            return result
        if self.id_type is not None and result.ids.type != self.id_type:
            reason = (f"ids are {result.ids.type} but this output folder's ids are "
                      f"{self.id_type}")
            every = pa.array([True] * len(result.ids), pa.bool_())
            return self._reject(result, every, lambda _: reason)
        self.id_type = self.id_type or result.ids.type
        values = result.ids.to_pylist()
        taken = pa.array([value in self.seen for value in values], pa.bool_())
        self.seen.update(value for value in values if value not in self.seen)
        if not pc.any(taken).as_py():
            return result
        return self._reject(result, taken, lambda value: (
            f"duplicate id {value!r}: another shard of this output already has a prediction"))

    def _reject(self, result: ShardResult, rejected: pa.Array, reason) -> ShardResult:
        kept = storage.read_table(result.staged).filter(pc.invert(rejected))
        storage.remove(result.staged)
        staged = result.staged if kept.num_rows else ""
        if staged:
            storage.write_table(staged, kept)
        dropped = result.ids.filter(rejected).to_pylist()
        rows = tuple(RejectedRow(str(value), reason(value)) for value in dropped)
        return dataclasses.replace(result, staged=staged,
                                   ids=kept.column("id").combine_chunks(),
                                   rejected=result.rejected + rows)
