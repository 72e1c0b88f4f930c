"""A sweep's ``report.html``: a summary (trained-to-chance trials flagged), the trials in a
table with a status filter, a search box and sorting, the best trial's confusion matrix and
learning curves, every trial's validation curve, the best-so-far history, hyperparameter
importance, validation accuracy against each swept hyperparameter and parallel coordinates.

Rebuilt from the sweep's files alone (``python -m jobs.report FOLDER``), so old sweeps and
running ones get pages too; while a sweep runs the driver rebuilds it every few seconds with
``live=True`` (the page reloads itself). The page stays small at any size: the table holds the
best ``TABLE_ROWS`` trials (every trial is in ``trials.parquet``) and the charts draw at most
``charts.MAX_POINTS`` (``charts`` says how).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mnist_core import best, charts, storage
from mnist_core.config import HYPERPARAMETERS, hyperparameter_text
from mnist_core.html import figure, markup, page, table, write_page
from mnist_core.importance import MAX_ROWS, hyperparameter_importance
from mnist_core.reports import (
    describe_selection,
    diverged,
    ranked_trials,
)
from mnist_core.sweep.config import Halving, parse_sweep_config
from mnist_core.sweep.ranking import describe_choice, seed_means
from mnist_core.sweep.reading import (
    SweepFiles,
    count_at_chance,
    ok_accuracy,
    true_where,
    trust_among,
    values_at,
)
from mnist_core.sweep.refit import describe_kept_seed

TABLE_ROWS = 1000
PAGE_ROWS = 5_000  # a bigger sweep's page draws from the best and a sample (``PageTrials``)
COUNTED_COLUMNS = ["trial_id", "status", "val_accuracy", "finished_at"]  # of every trial
PAGE_COLUMNS = ["trial_id", "status", "error", "seed", "epochs", "best_epoch", "val_accuracy",
                "val_loss", "val_images", "test_accuracy", "train_seconds", "rung", "pack_id",
                "dataset", "finished_at"]
OTHER_ROWS = 200  # pruned and failed trials the table keeps room for, beside the best
# Fewer ok trials than this in a halving search: importance is fit on a rung's trials instead.
IMPORTANCE_TRIALS = 30
_ROW_COLUMNS = ["trial_id", "status", "best_epoch", "val_accuracy", "test_accuracy",
                "train_seconds", "rung", "pack_id", "error"]


@dataclass(frozen=True)
class PageTrials:
    """What the page draws from: ``rows``, every trial of a sweep of up to ``PAGE_ROWS`` (else
    the best ``TABLE_ROWS``, the first ``OTHER_ROWS`` others, each best-so-far step and a
    seeded sample); ``table``, a few columns of every trial (for counts and statistics);
    ``details(name, ids)``, the ``epochs`` or ``confusion`` rows of a few trials;
    ``best_so_far``, each step of the best validation accuracy so far (``_best_so_far``)."""

    rows: list[dict]
    table: pa.Table  # ``COUNTED_COLUMNS`` of every trial
    details: Callable[[str, list[str]], list[dict]]
    best_so_far: list[dict]

    @property
    def sampled(self) -> bool:
        return len(self.rows) < self.table.num_rows

    @property
    def ok_count(self) -> int:
        """How many trials of the whole sweep are ok."""
        return pc.sum(pc.equal(self.table.column("status"), "ok")).as_py() or 0


def sweep_page(trials: PageTrials, sweep_id: str, config_text: str, swept: list[str],
               log_scaled: frozenset[str] = frozenset(), live: bool = False,
               best: dict | None = None, halving: Halving | None = None) -> str:
    """The HTML of a sweep's report from its trials (``page_trials``) and ``best`` (its
    ``best/best.json``: how the setting was chosen, the refit); ``halving``:
    the sweep's successive halving, if it has one."""
    ranked = ranked_trials(trials.rows)
    chosen_id = best["choice"]["trial_id"] if best and "choice" in best else None
    chosen = next((row for row in ranked if row["trial_id"] == chosen_id),
                  ranked[0] if ranked else None)
    sections = [_summary(trials, chosen, chosen is not None and chosen is not ranked[0])]
    if best and "choice" in best:
        sections.append(_choice(best))
    if len({row["seed"] for row in ranked}) > 1:
        sections.append(_seed_table(ranked, swept))
    sections.append(_trials_table(trials, ranked, swept))
    if ranked:
        sections.append(_best_trial(trials, chosen))
        sections.append(_search_charts(trials, ranked, swept, log_scaled, halving))
    sections.append(markup("<h2>Config</h2><pre>{0}</pre>", config_text))
    return page(f"Sweep {sweep_id}", sections, live)


def _summary(trials: PageTrials, best: dict | None, not_first: bool) -> str:
    """Counts, and the chosen trial (``not_first``: chosen by more than its rank on the one
    validation split, see "The choice")."""
    table = trials.table
    counts = Counter({item["values"]: item["counts"]
                      for item in pc.value_counts(table.column("status")).to_pylist()})
    statuses = ", ".join(markup("<span class={0}>{1:,} {0}</span>", status, counts[status])
                         for status in ("ok", "pruned", "failed") if counts[status])
    dataset = trials.rows[0]["dataset"] if trials.rows else "?"
    at_chance = count_at_chance(table)
    warning = "" if not at_chance else markup(
        " <span class=diverged>{0:,} trained to chance level (validation accuracy near "
        "1/10): flagged in the table.</span>", at_chance)
    statistics = trust_among(best, table)
    trust = "" if statistics is None else markup(" It was {0}.", describe_selection(statistics))
    chosen = "" if best is None else markup(
        "<p>{label}: <b>{trial_id}</b> — validation {val_accuracy:.4f}, test "
        "{test_accuracy:.4f} (epoch {best_epoch} of {epochs}). Ties go to the lower "
        "validation loss, then the earlier trial.",
        label="Chosen (see The choice)" if not_first else "Best by validation accuracy",
        **_fields(best, "trial_id", "val_accuracy", "test_accuracy", "best_epoch", "epochs"),
    ) + trust + "</p>"
    sampled = "" if not trials.sampled else markup(
        " Charts and tables draw from {0:,} of them: the best, each step of the best so far, "
        "and a seeded sample; every trial is in trials.parquet.", len(trials.rows))
    return (markup("<p>{0:,} trials on {1}: ", table.num_rows, dataset) + statuses
            + ". The test set chooses nothing." + warning + sampled + "</p>" + chosen)


def _fields(record: dict, *names: str) -> dict:
    """``record``'s values of ``names`` (None where one is missing), for ``markup``."""
    return {name: record.get(name) for name in names}


def _choice(best: dict) -> str:
    """How the setting was chosen, and its refit."""
    choice = best["choice"]
    refit = best.get("refit", {})
    kept = describe_kept_seed(refit)
    refit_line = "" if "test_accuracy" not in refit else markup(
        " Trained again on training + validation data ({train_images:,} images, {epochs} "
        "epochs{kept}), it scores {test_accuracy:.4f} on the test set; that model is "
        "best/model.keras.", kept="; " + kept if kept else "",
        **_fields(refit, "train_images", "epochs", "test_accuracy"))
    heading = markup("<h2>The choice</h2><p>{how} (validation {val_accuracy:.4f}, test "
                     "{test_accuracy:.4f}).", how=describe_choice(choice),
                     **_fields(best, "val_accuracy", "test_accuracy")) + refit_line + "</p>"
    return heading


def _seed_table(ranked: list[dict], swept: list[str]) -> str:
    """Each setting's mean ± standard deviation over its seeds."""
    records = seed_means(ranked)[:TABLE_ROWS]
    names = [name for name in swept if name != "seed"]
    rows = [{"trial_id": record["trial_id"], "status": "ok",
             **{name: _plain(record[name]) for name in names}, "seeds": record["seeds"],
             **{f"{metric}_{part}": _plain(record[f"{metric}_{part}"])
                for metric in ("val_accuracy", "test_accuracy") for part in ("mean", "std")}}
            for record in records]
    columns = ["trial_id", *names, "seeds", "val_accuracy_mean", "val_accuracy_std",
               "test_accuracy_mean", "test_accuracy_std"]
    return ("<h2>Settings over seeds</h2><p>Each setting's mean and standard deviation over "
            "its seeds (trial_id: its best seed), best mean validation accuracy first.</p>"
            + table("settings", columns, rows, ["ok"], "val_accuracy_mean"))


def _trials_table(trials: PageTrials, ranked: list[dict], swept: list[str]) -> str:
    shown = ranked[:TABLE_ROWS]
    kept = {row["trial_id"] for row in shown}
    others = [row for row in trials.rows if row["trial_id"] not in kept]
    shown += others[:max(OTHER_ROWS, TABLE_ROWS - len(shown))]
    columns = [*_ROW_COLUMNS[:2], *swept, *_ROW_COLUMNS[2:]]
    rows = [{name: _plain(row.get(name)) for name in columns} | {"diverged": diverged(row)}
            for row in shown]
    columns = [name for name in columns if name in _ROW_COLUMNS[:2]  # none left all blank
               or any(row[name] not in (None, "") for row in rows)]
    total = trials.table.num_rows
    note = "" if len(shown) == total else markup(
        " The best {0:,} by validation accuracy (and some of the others) of {1:,}; every "
        "trial is in trials.parquet.", len(ranked[:TABLE_ROWS]), total)
    return ("<h2>Trials</h2><p>Click a header to sort (▲ ascending, ▼ descending); filter by "
            "status or search any column." + note + "</p>"
            + table("trials", columns, rows, ["ok", "pruned", "failed"], "val_accuracy"))


def _best_trial(trials: PageTrials, best: dict) -> str:
    cells = trials.details("confusion", [best["trial_id"]])
    epochs = sorted(trials.details("epochs", [best["trial_id"]]), key=lambda row: row["epoch"])
    return (markup("<h2>Best trial {0}</h2><div class=grid>", best["trial_id"])
            + figure(charts.confusion(cells, "Confusion matrix (test set)",
                                      best.get("dataset")), "confusion")
            + figure(charts.learning_curves(epochs, "Learning curves"), "curves") + "</div>")


def _search_charts(trials: PageTrials, ranked: list[dict], swept: list[str],
                   log_scaled: frozenset[str], halving: Halving | None) -> str:
    curves = ranked[:charts.MAX_CURVES]
    by_trial: dict[str, list[dict]] = {}
    for row in sorted(trials.details("epochs", [r["trial_id"] for r in curves]),
                      key=lambda row: row["epoch"]):
        by_trial.setdefault(row["trial_id"], []).append(row)
    parts = ["<h2>The search</h2><div class=grid>",
             figure(charts.history(trials.best_so_far), "history"),
             figure(charts.all_curves(by_trial, curves), "all-curves")]
    scored, about = _importance_trials(trials, ranked, halving)
    shares = hyperparameter_importance(scored, swept, log_scaled)
    if shares:
        parts.append(figure(charts.importance(shares, about), "importance"))
    total = trials.ok_count  # the charts say "n of total": every ok trial, not the drawn ones
    parts += [figure(charts.slice_plot(ranked, name, name in log_scaled, total),
                     f"slice-{index}") for index, name in enumerate(swept)]
    parts.append("</div>")
    if swept:
        parts.append(figure(charts.parallel(ranked, swept, log_scaled, total),
                            "parallel"))
    return "".join(parts)


def _importance_trials(trials: PageTrials, ranked: list[dict],
                       halving: Halving | None) -> tuple[list[dict], str]:
    """The trials importance is fit on, each scored by ``val_accuracy``, and what that score
    is: the ok trials'; in a halving search with fewer than ``IMPORTANCE_TRIALS`` of them
    (most were pruned), every trial that reached the deepest rung that many reached, scored
    at that rung's epochs as the rung compared them (from their epochs)."""
    about = f"val_accuracy of the {len(ranked):,} ok trials"
    reached = [row for row in trials.rows if row["status"] != "failed"
               and row.get("rung") is not None]
    if halving is None or len(ranked) >= IMPORTANCE_TRIALS or not reached:
        return ranked, about
    budgets = halving.rungs(max(row["epochs"] for row in reached))
    rung = max((rung for rung in range(len(budgets))
                if sum(row["rung"] >= rung for row in reached) >= IMPORTANCE_TRIALS),
               default=None)
    if rung is None:
        return ranked, about
    cohort = [row for row in reached if row["rung"] >= rung]
    if len(cohort) > MAX_ROWS:  # the importance's own cap: read no more epochs than it uses
        picked = np.random.default_rng(0).choice(len(cohort), MAX_ROWS, replace=False)
        cohort = [cohort[index] for index in sorted(picked)]
    curves: dict[str, dict[int, float]] = {}
    for point in trials.details("epochs", [row["trial_id"] for row in cohort]):
        curves.setdefault(point["trial_id"], {})[point["epoch"]] = point["val_accuracy"]
    scored = [row | {"status": "ok", "val_accuracy": _score_at(row, curves.get(
        row["trial_id"], {}), budgets[rung])} for row in cohort]
    return ([row for row in scored if row["val_accuracy"] is not None],
            f"val_accuracy at epoch {budgets[rung]} of the {len(cohort):,} "
            f"{'drawn ' if trials.sampled else ''}trials that reached rung {rung}")


def _score_at(row: dict, curve: dict[int, float], epochs: int) -> float | None:
    """A trial's validation accuracy after ``epochs`` epochs (its own, if fewer), as halving
    ranked it: the best so far where its epoch is chosen by validation, else the last."""
    values = [curve[epoch] for epoch in sorted(curve) if epoch <= min(epochs, row["epochs"])]
    values = [value for value in values if value is not None]
    if not values:
        return None
    return max(values) if row["restore_best"] or row["patience"] else values[-1]


def page_trials(folder: str, swept: list[str]) -> PageTrials:
    """The page's view of the sweep in ``folder`` (``PageTrials``), read column by column."""
    names = [*dict.fromkeys([*PAGE_COLUMNS, *HYPERPARAMETERS, *swept])]
    files = SweepFiles(folder)  # each file's trials found once for all the page's reads
    table = files.rows("trials", columns=COUNTED_COLUMNS)
    best_so_far = _best_so_far(table)
    if table.num_rows > PAGE_ROWS:  # every trial's few columns, the drawn ones' all
        picked = np.array(sorted(_drawn_positions(table, best_so_far)), np.int64)
        wanted = set(values_at(table.column("trial_id"), picked))
        rows = files.rows("trials", wanted, names).to_pylist()
    else:
        rows = files.rows("trials", columns=names).to_pylist()
    return PageTrials(rows, table, lambda name, ids: files.rows(name, set(ids)).to_pylist(),
                      best_so_far)


def _drawn_positions(table: pa.Table, best_so_far: list[dict]) -> set[int]:
    """Which rows a big sweep's page draws: the best ``TABLE_ROWS`` ok trials (and ties), the
    first ``OTHER_ROWS`` others, each step of the best so far, and a seeded sample."""
    scores = _ok_scores(table)
    best = np.argsort(-scores, kind="stable")[:TABLE_ROWS]
    others = np.flatnonzero(scores == -2.0)[:OTHER_ROWS]
    positions = {*best.tolist(), *others.tolist()}
    positions |= {int(row["position"]) for row in best_so_far}
    sample = np.random.default_rng(0).choice(table.num_rows, PAGE_ROWS, replace=False)
    return positions | set(sample.tolist())


def _ok_scores(table: pa.Table) -> np.ndarray:
    """Each trial's validation accuracy where it is ok (-1 without one), else -2."""
    ok, accuracy = ok_accuracy(table)
    return np.where(ok, np.nan_to_num(accuracy, nan=-1.0), -2.0)


def _best_so_far(table: pa.Table) -> list[dict]:
    """Each trial that raised the best validation accuracy so far, in the order trials finished
    (failed ones aside; trials recorded in the same second, in the order they were recorded):
    its row, and ``finished``, how many had finished by then. Numpy columns, no copy of the
    table: a million trials' page builds in a driver that stays small."""
    accuracy = table.column("val_accuracy").to_numpy(zero_copy_only=False)
    counted = true_where(pc.not_equal(table.column("status"), "failed")) & ~np.isnan(accuracy)
    positions = np.flatnonzero(counted)
    if not len(positions):
        return []
    finished = pc.fill_null(table.column("finished_at").cast(pa.int64()), np.iinfo(np.int64).max)
    order = np.argsort(finished.to_numpy()[positions], kind="stable")
    positions = positions[order]
    values = accuracy[positions]
    running = np.maximum.accumulate(values)
    steps = [0, *np.flatnonzero(running[1:] > running[:-1]) + 1]
    steps += [len(values) - 1] if steps[-1] != len(values) - 1 else []
    picked = table.take(pa.array(positions[steps])).to_pylist()
    return [row | {"finished": int(step) + 1, "best": float(running[step]),
                   "position": int(positions[step])} for row, step in zip(picked, steps)]


def _plain(value):
    value = hyperparameter_text(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def write_sweep_report(folder: str, live: bool = False) -> str:
    """Build ``<folder>/report.html`` from a sweep's files; return its location."""
    config_text = storage.read_bytes(storage.join(folder, "sweep.toml")).decode()
    config = parse_sweep_config(config_text, expand=False)
    record = best.read_record(folder)
    html = sweep_page(page_trials(folder, config.grid_names), storage.name(folder), config_text,
                      config.grid_names, config.log_scaled, live, record, config.halving)
    return write_page(folder, html)
