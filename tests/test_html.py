"""Every value that reaches a page is escaped: markup written into every string column of
every table a sweep page or a scoring page reads never survives into the HTML."""

import pyarrow as pa
import pytest

from mnist_core import storage
from mnist_core.scoring.manifest import FAILURES_SCHEMA, MANIFEST_SCHEMA
from mnist_core.scoring.page import write_scoring_report
from mnist_core.scoring.scorer import PREDICTIONS_SCHEMA
from mnist_core.sweep.page import write_sweep_report
from mnist_core.sweep.reading import SCHEMAS

MARKUP = "<img src=x onerror=alert(1)>"
SWEEP = """
[sweep]
name = "evil"
dataset = "digits"
[grid]
learning_rate = [0.1, 0.5]
activation = ["sigmoid", "relu"]
"""


def _value(field: pa.Field, index: int):
    """A plausible value of ``field`` for row ``index``; every string is markup."""
    kind = field.type
    if pa.types.is_string(kind):
        return f"{MARKUP}{index}" if field.name != "status" else MARKUP
    if pa.types.is_fixed_size_list(kind):
        return [0.1] * kind.list_size
    if pa.types.is_list(kind):
        return [f"{MARKUP}"] if pa.types.is_string(kind.value_type) else [10]
    if pa.types.is_boolean(kind):
        return False
    if pa.types.is_timestamp(kind):
        return None
    if pa.types.is_integer(kind):
        return index % 10
    return 0.5 + index / 100


def _table(schema: pa.Schema, rows: int, **fixed) -> pa.Table:
    records = [{field.name: fixed.get(field.name, _value(field, index)) for field in schema}
               for index in range(rows)]
    return pa.Table.from_pylist(records, schema=schema)


@pytest.mark.parametrize("status", [MARKUP, "ok"])
def test_markup_in_every_sweep_table_is_escaped(tmp_path, status):
    folder = tmp_path / "evil-1"
    folder.mkdir()
    (folder / "sweep.toml").write_text(SWEEP)
    trials = _table(SCHEMAS["trials"], 4, status=status)
    ids = trials.column("trial_id")
    for name, schema in SCHEMAS.items():
        table = trials if name == "trials" else _table(schema, 4)
        if name != "trials":
            table = table.set_column(0, "trial_id", ids)
        storage.write_table(str(folder / f"{name}.parquet"), table)
    page = (tmp_path / "evil-1" / "report.html")
    write_sweep_report(str(folder))
    text = page.read_text()
    assert "<img" not in text and "&lt;img src=x" in text


def test_markup_in_every_scoring_table_is_escaped(tmp_path):
    out = tmp_path / "scores"
    out.mkdir()
    predictions = _table(PREDICTIONS_SCHEMA, 2)
    storage.write_table(str(out / "pred.parquet"), predictions)
    manifest = _table(MANIFEST_SCHEMA, 2, output=str(out / "pred.parquet"))
    storage.write_table(str(out / "manifest.parquet"), manifest)
    storage.write_table(str(out / "failures.parquet"), _table(FAILURES_SCHEMA, 3))
    text = (out / "report.html").read_text() if write_scoring_report(str(out)) else ""
    assert "<img" not in text and "&lt;img src=x" in text


def _evil_record(trial_id: str) -> dict:
    """A ``best.json`` of the full shape whose every value but the chosen trial's id (which
    the page looks up) is markup, numbers included, as anyone who can write a shared results
    bucket could leave it."""
    refit = {key: MARKUP for key in ("trial_id", "epochs", "train_images", "test_accuracy",
                                     "test_loss", "seed", "train_loss", "kept_by", "model")}
    return {"trial_id": trial_id, "val_accuracy": MARKUP, "test_accuracy": MARKUP,
            "choice": {"chosen_by": "validation", "trial_id": trial_id},
            "refit": refit | {"seeds": [{"seed": MARKUP}, {"seed": MARKUP}]},
            "selection": {"val_images": MARKUP}}


@pytest.mark.parametrize("chosen_by", ["cross_validation", "seed_mean", MARKUP])
def test_markup_in_every_field_of_best_json_is_escaped(tmp_path, chosen_by):
    import json

    folder = tmp_path / "evil-2"
    folder.mkdir()
    (folder / "sweep.toml").write_text(SWEEP)
    trials = _table(SCHEMAS["trials"], 4, status="ok")
    for name, schema in SCHEMAS.items():
        table = trials if name == "trials" else _table(schema, 4).set_column(
            0, "trial_id", trials.column("trial_id"))
        storage.write_table(str(folder / f"{name}.parquet"), table)
    record = _evil_record(trials.column("trial_id")[0].as_py())
    record["choice"] |= {"chosen_by": chosen_by, "seed_mean": {"trial_id": MARKUP}}
    (folder / "best").mkdir()
    (folder / "best" / "best.json").write_text(json.dumps(record))
    text = (folder / "report.html").read_text() if write_sweep_report(str(folder)) else ""
    assert "<img" not in text and "&lt;img src=x" in text
    assert "The choice" in text


def test_a_trial_named_with_markup_in_best_json_is_escaped_on_the_scoring_page(tmp_path):
    import json

    sweep = tmp_path / "sweep"
    (sweep / "best").mkdir(parents=True)
    (sweep / "best" / "best.json").write_text(json.dumps({"trial_id": MARKUP}))
    out = tmp_path / "scores"
    out.mkdir()
    manifest = _table(MANIFEST_SCHEMA, 1, output="", model=str(sweep / "best" / "model.keras"))
    storage.write_table(str(out / "manifest.parquet"), manifest)
    text = (out / "report.html").read_text() if write_scoring_report(str(out)) else ""
    assert "<img" not in text and f"trial {MARKUP}".replace("<", "&lt;").replace(
        ">", "&gt;") in text
