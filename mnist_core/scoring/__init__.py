"""The scoring wing: image shards scored by a trained model on a pool of Ray actors, each
image exactly once, across crashes, reruns and model changes.

Modules, in the order data flows through them:
``config`` (``ScoreConfig``), ``shards`` (finding, fingerprinting and reading input shards),
``scorer`` (the actor: a shard in, its staged predictions and a ``ShardResult`` out),
``driver`` (``check_inputs``, ``make_plan``, ``check_resources`` and ``execute``: what can be
scored, what is pending, the actor pool), ``manifest`` (the ledger of
scored shards and rejected rows) and ``page`` (``report.html``); one run per output folder is
the core's ``lock``.

The names it offers: ``ScoreConfig``, ``check_inputs``, ``make_plan``, ``check_resources``,
``execute``, ``ScoreSummary``.
Importing it starts nothing (no Ray, no TensorFlow).
"""

from mnist_core.scoring.config import ScoreConfig
from mnist_core.scoring.driver import (
    ScoreSummary,
    check_inputs,
    check_resources,
    execute,
    make_plan,
)

__all__ = ["ScoreConfig", "ScoreSummary", "check_inputs", "check_resources", "execute",
           "make_plan"]
