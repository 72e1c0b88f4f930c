"""The one rule for the chosen trial: ok trials only, highest validation accuracy, ties to the
lower validation loss, then to the smaller trial id; never the test set."""

import pytest

from mnist_core.reports import best_trial, ranked_trials


def _row(trial_id, val_accuracy, val_loss=0.5, status="ok", test_accuracy=0.0):
    return {"trial_id": trial_id, "status": status, "val_accuracy": val_accuracy,
            "val_loss": val_loss, "test_accuracy": test_accuracy}


def test_highest_validation_accuracy_wins_whatever_the_test_set_says():
    rows = [_row("t0000", 0.90, test_accuracy=0.99), _row("t0001", 0.95, test_accuracy=0.10)]
    assert best_trial(rows)["trial_id"] == "t0001"


def test_failed_and_pruned_trials_are_never_chosen():
    rows = [_row("t0000", 0.99, status="failed"), _row("t0001", 0.99, status="pruned"),
            _row("t0002", 0.50)]
    assert best_trial(rows)["trial_id"] == "t0002"
    assert best_trial([_row("t0000", 0.9, status="failed")]) is None


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_ties_go_to_the_lower_loss_then_the_smaller_id_in_any_order(order):
    rows = [_row("t0002", 0.9653, 0.30), _row("t0001", 0.9653, 0.30), _row("t0000", 0.9653, 0.31)]
    shuffled = [rows[index] for index in order]
    assert best_trial(shuffled)["trial_id"] == "t0001"
    assert [row["trial_id"] for row in ranked_trials(shuffled)] == ["t0001", "t0002", "t0000"]


def test_a_trial_at_chance_level_is_flagged_diverged():
    from mnist_core.reports import diverged

    assert diverged(_row("t0000", 0.0972)) and diverged(_row("t0001", 0.15))
    assert not diverged(_row("t0002", 0.16))
    assert not diverged(_row("t0003", 0.05, status="failed"))


def test_ties_go_to_the_earlier_trial_past_ten_thousand_trials():
    from mnist_core.reports import best_trial

    rows = [{"trial_id": trial_id, "status": "ok", "val_accuracy": 0.9, "val_loss": 0.3}
            for trial_id in ("t10000-aaaaaaaa", "t1001-bbbbbbbb", "t0999-cccccccc")]
    assert best_trial(rows)["trial_id"] == "t0999-cccccccc"
    assert best_trial(rows[:2])["trial_id"] == "t1001-bbbbbbbb"  # not string order
