"""What ``--model`` may name, and the ``latest`` pointer that sweeps maintain.

``--model`` takes a ``.keras`` file, a sweep folder (its ``best/model.keras``), a training
folder (its ``model.keras``) or ``<out>/latest``: a small JSON file that ``jobs.sweep`` rewrites
atomically each time a sweep in ``<out>`` completes with a best model, naming that sweep. It
never names a sweep that is still running or has no best model, and it holds the sweep's id
rather than a path, so the folder can be copied or synced elsewhere. All of these may be local
paths or URIs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mnist_core import best, storage
from mnist_core.errors import DataFormatError, DataNotFoundError

LATEST = "latest"


def write_latest(out: str, sweep_id: str) -> str:
    """Point ``<out>/latest`` at sweep ``sweep_id`` (atomically); return the pointer's path."""
    pointer = storage.join(out, LATEST)
    record = {"sweep_id": sweep_id, "model": f"{sweep_id}/best/model.keras",
              "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    storage.write_bytes(pointer, (json.dumps(record, indent=2) + "\n").encode())
    return pointer


def move_latest(out: str, sweep_id: str) -> bool:
    """Point ``<out>/latest`` at sweep ``sweep_id`` unless it points at a sweep started after
    it (a resumed older sweep never takes ``latest`` from a newer one); return whether it
    moved. A sweep's start is when its ``sweep.toml`` was written."""
    current = _pointed_sweep(storage.join(out, LATEST))
    if current not in (None, sweep_id) and _started(out, current) > _started(out, sweep_id):
        return False
    write_latest(out, sweep_id)
    return True


def _pointed_sweep(pointer: str) -> str | None:
    """The sweep id the pointer names; None without a readable one."""
    if not storage.exists(pointer):
        return None
    try:
        sweep_id = json.loads(storage.read_bytes(pointer))["sweep_id"]
    except (ValueError, KeyError, TypeError):
        return None
    return sweep_id if isinstance(sweep_id, str) else None


def _started(out: str, sweep_id: str) -> int:
    """When sweep ``sweep_id`` started (its ``sweep.toml``'s mtime, ns); 0 when unknown."""
    entries = storage.list_files(storage.join(out, sweep_id, "sweep.toml"))
    return entries[0].mtime_ns if entries else 0


def resolve_model(reference: str) -> str:
    """The ``.keras`` file that ``reference`` names; ``DataNotFoundError`` says what was tried."""
    reference = str(reference).rstrip("/")
    if storage.name(reference) == LATEST and storage.exists(reference):
        return _follow_latest(reference)
    if storage.exists(reference):
        return reference
    for candidate in (best.model_path(reference),
                      storage.join(reference, "model.keras")):
        if storage.exists(candidate):
            return candidate
    hint = (" (no sweep has completed there yet)" if storage.name(reference) == LATEST
            else "; expected a .keras file, a sweep folder or <out>/latest")
    raise DataNotFoundError(f"{reference}: no such model{hint}", key="model")


def _follow_latest(pointer: str) -> str:
    try:
        record = json.loads(storage.read_bytes(pointer))
        model = storage.join(storage.parent(pointer), *record["model"].split("/"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DataFormatError(f"{pointer}: not a latest-sweep pointer", key="model") from None
    if not storage.exists(model):
        raise DataNotFoundError(f"{pointer}: it names {model}, which does not exist",
                                key="model")
    return model
