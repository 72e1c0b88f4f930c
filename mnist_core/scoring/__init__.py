"""The scoring wing: image shards scored by a trained model on a pool of Ray actors, each
image exactly once, across crashes, reruns and model changes.

Modules, in the order data flows through them:
``config`` (``ScoreConfig``), ``shards`` (finding, fingerprinting and reading input shards),
``scorer`` (the actor: a shard in, its predictions file and a ``ShardResult`` out), ``driver``
(``make_plan`` and ``execute``: what is pending, the actor pool), ``manifest`` (the ledger of
scored shards and rejected rows) and ``page`` (``report.html``); one run per output folder is
the core's ``lock``.

The names it offers: ``ScoreConfig``, ``make_plan``, ``execute``, ``ScoreSummary``.
Importing it starts nothing (no Ray, no TensorFlow).
"""

from mnist_core.scoring.config import ScoreConfig
from mnist_core.scoring.driver import ScoreSummary, execute, make_plan

__all__ = ["ScoreConfig", "ScoreSummary", "execute", "make_plan"]
