"""A sweep's chosen model, ``<sweep>/best/``: the one module that opens it.

``best/`` holds ``model.keras`` (the model scoring takes from a sweep; after a refit, the
refit model, with the validation-time one beside it as ``model_validation.keras``) and
``best.json``, the record of which trial it is and how it was chosen (``choice``), how far
its validation figure can be trusted (``selection``) and its refit (``refit``). The sweep
writes them; pages, ``--resume`` and scoring read them back. A record read back is data from
outside — a shared results bucket may hold anything — so ``read_record`` checks its shape and
turns damage into one line naming the file (``DataFormatError``, exit 3), and pages escape
every value of it (``html.markup``).
"""

from __future__ import annotations

import json

from mnist_core import storage
from mnist_core.errors import DataFormatError

FOLDER = "best"
MODEL = "model.keras"
VALIDATION_MODEL = "model_validation.keras"
RECORD = "best.json"
_OBJECTS = ("choice", "refit", "selection")  # the parts of a record that are themselves records


def model_path(sweep: str) -> str:
    """Where the sweep's chosen model is."""
    return storage.join(sweep, FOLDER, MODEL)


def record_path(sweep: str) -> str:
    """Where the sweep's ``best.json`` is."""
    return storage.join(sweep, FOLDER, RECORD)


def read_record(sweep: str) -> dict | None:
    """The sweep's ``best.json`` (None when it has none); ``DataFormatError`` naming the file
    when it is not a JSON object with a text ``trial_id`` and object-valued parts."""
    location = record_path(sweep)
    if not storage.exists(location):
        return None
    try:
        record = json.loads(storage.read_bytes(location))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{location}: not a readable best.json ({error})") from None
    if not _well_formed(record):
        raise DataFormatError(f"{location}: not a best.json record (damaged or edited)")
    return record


def _well_formed(record) -> bool:
    """Whether ``record`` has the shape readers rely on (its values may still be anything:
    pages format them leniently and escape them)."""
    if not isinstance(record, dict) or not isinstance(record.get("trial_id"), str):
        return False
    if any(not isinstance(record.get(part, {}), dict) for part in _OBJECTS):
        return False
    choice, refit = record.get("choice", {}), record.get("refit", {})
    return ((not choice or isinstance(choice.get("trial_id"), str))
            and isinstance(choice.get("seed_mean", {}), dict)
            and isinstance(refit.get("seeds", []), list))


def write_record(sweep: str, record: dict) -> None:
    """Replace the sweep's ``best.json`` with ``record`` (atomically)."""
    storage.write_bytes(record_path(sweep), json.dumps(record, indent=2).encode())


def update_record(sweep: str, **parts) -> dict | None:
    """Add ``parts`` to the sweep's ``best.json`` and return it (None, and nothing written,
    when it has none)."""
    record = read_record(sweep)
    if record is None:
        return None
    record |= parts
    write_record(sweep, record)
    return record


def write_chosen(sweep: str, model_bytes: bytes, record: dict) -> None:
    """Make ``model_bytes`` the sweep's chosen model and ``record`` its ``best.json``: the
    model first, so the record never names a model that is not there."""
    storage.write_bytes(model_path(sweep), model_bytes)
    write_record(sweep, record)


def write_refit_model(sweep: str, model_bytes: bytes) -> None:
    """Put a refit model in ``best/model.keras``, the validation-time one kept beside it."""
    storage.write_bytes(storage.join(sweep, FOLDER, VALIDATION_MODEL),
                        storage.read_bytes(model_path(sweep)))
    storage.write_bytes(model_path(sweep), model_bytes)


def chosen_trial(sweep: str) -> str | None:
    """The trial whose model ``best/`` holds, None when it holds none."""
    record = read_record(sweep)
    return None if record is None else record["trial_id"]
