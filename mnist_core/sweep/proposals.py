"""Model-based sampling: TPE proposes a sweep's samples round by round (``[search] sampler``).

Optuna's TPE sampler is driven by ask-and-tell: each round asks for ``round_size`` settings at
once (with Optuna's constant-liar option, so a round's proposals spread out rather than pile up
on one guess), every seed of each is trained as packs, and the round's results are told back
before the next round is asked for. The ``[grid]`` distributions are searched, and plain lists
of more than one value become categorical choices; a setting's value is its mean validation
accuracy over the seeds (a setting whose every seed failed is told as failed).

The sampler is seeded by ``[sweep] search_seed`` and every round is told in proposal order, so
the same results give the same proposals: a resumed sweep asks again from the start, finds the
trials of earlier rounds recorded, tells their recorded results, and so re-derives exactly the
proposals the first run made, training only what is missing.
"""

from __future__ import annotations

import warnings

from mnist_core.sweep.config import SweepConfig
from mnist_core.sweep.packs import PackRunner
from mnist_core.sweep.recording import PackRecorder
from mnist_core.sweep.search_space import from_optuna, optuna_space
from mnist_core.sweep.trials import SearchSpace, make_trial


def run_rounds(config: SweepConfig, recorder: PackRecorder, run: PackRunner) -> int:
    """Propose, train and tell every round of ``config``'s search; the packs trained."""
    proposer = Proposer(config.space)
    store, space = recorder.store, config.space
    packs = proposed = 0
    while proposed < space.samples:
        count = min(config.search.round_size, space.samples - proposed)
        asked = proposer.ask(count)
        trials = [make_trial((proposed + number) * len(space.seeds) + position, values, seed)
                  for number, (_, values) in enumerate(asked)
                  for position, seed in enumerate(space.seeds)]
        done = store.finished_ids()
        packs += run.train([trial for trial in trials if trial.trial_id not in done], None,
                       recorder)
        recorded = {row["trial_id"]: row for row in store.index().to_pylist()}
        per_setting = len(space.seeds)
        for number, (handle, _) in enumerate(asked):
            group = trials[number * per_setting:(number + 1) * per_setting]
            proposer.tell(handle, [recorded[trial.trial_id] for trial in group])
        proposed += count
    return packs


class Proposer:
    """Optuna's TPE sampler over a search space, asked and told through an in-memory study."""

    def __init__(self, space: SearchSpace):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        searched = [*space.distributions, *(key for key, values in space.axes.items()
                                            if len(values) > 1)]
        self.distributions = optuna_space(space, searched)
        with warnings.catch_warnings():  # constant_liar and multivariate are "experimental"
            warnings.simplefilter("ignore")
            sampler = optuna.samplers.TPESampler(seed=space.search_seed, constant_liar=True,
                                                 multivariate=True)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)

    def ask(self, count: int) -> list[tuple[object, dict]]:
        """``count`` proposals at once: (the Optuna trial, the ``[grid]`` values)."""
        asked = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(count):
                handle = self.study.ask(self.distributions)
                asked.append((handle, self._values(handle.params)))
        return asked

    def tell(self, handle, rows: list[dict]) -> None:
        """Tell one proposal's result: the mean validation accuracy of its ok seeds."""
        from optuna.trial import TrialState

        scores = [row["val_accuracy"] for row in rows
                  if row["status"] == "ok" and row["val_accuracy"] is not None]
        if scores:
            self.study.tell(handle, sum(scores) / len(scores))
        else:
            self.study.tell(handle, state=TrialState.FAIL)

    def _values(self, params: dict) -> dict:
        return {key: options[0] for key, options in self.space.axes.items()} | {
            key: from_optuna(self.space, key, value) for key, value in params.items()}
