"""The page's charts draw what they are given: here, trials of a single epoch (a one-epoch
sweep, or trials pruned at a first rung of one epoch), which a line alone would not show."""

from mnist_core import charts


def _trial(number: int, epochs: int) -> tuple[dict, list[dict]]:
    trial_id = f"t{number:04d}"
    curve = [{"trial_id": trial_id, "epoch": epoch, "val_accuracy": 0.5 + 0.01 * number}
             for epoch in range(1, epochs + 1)]
    return {"trial_id": trial_id, "status": "ok"}, curve


def test_one_epoch_trials_are_drawn_as_dots_and_longer_ones_as_lines():
    trials = [_trial(number, 1 if number % 2 else 3) for number in range(12)]
    ranked = [row for row, _ in trials]
    figure = charts.all_curves({row["trial_id"]: curve for row, curve in trials}, ranked)
    rest, *highlighted = figure.data
    assert len(highlighted) == charts.HIGHLIGHTED
    for trace, (row, curve) in zip(highlighted, trials):
        assert trace.name == row["trial_id"]
        assert list(trace.y) == [point["val_accuracy"] for point in curve]
        assert trace.mode == ("markers" if len(curve) == 1 else "lines")
    # The other trials share one trace: each curve ends with a gap; one-epoch ones get a dot.
    sizes = iter(rest.marker.size)
    drawn = iter(zip(rest.x, sizes))
    for _, curve in trials[charts.HIGHLIGHTED:]:
        points = [next(drawn) for _ in curve]
        assert [x for x, _ in points] == [point["epoch"] for point in curve]
        assert all(size == (charts.DOT_SIZE if len(curve) == 1 else 0) for _, size in points)
        assert next(drawn) == (None, 0)
    assert "lines" in rest.mode and "markers" in rest.mode
