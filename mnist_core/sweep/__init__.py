"""The sweep wing: many trials of the dense model as packs of Ray tasks, gathered into reports.

Modules, in the order data flows through them:
``config`` (the sweep TOML and its grid, ``SweepConfig``), ``search_space`` (sampled
hyperparameters), ``packs`` (trials grouped into packs), ``worker`` (the Ray task that trains a
pack), ``driver`` (``run_sweep``: submit, gather, record), ``halving`` (successive halving's
rungs), ``recording`` (finished packs into part files and ``best/``), ``compaction`` (the parts
into one file per table), ``reading`` (a sweep's tables, running or finished), ``page``
(``report.html``) and
``tracking`` (MLflow, TensorBoard).

The names it offers: ``run_sweep``, ``SweepSummary``, ``SweepConfig``, ``load_sweep_config``,
``parse_sweep_config``, ``read_sweep``. Importing it starts nothing (no Ray, no TensorFlow).
"""

from mnist_core.sweep.config import SweepConfig, load_sweep_config, parse_sweep_config
from mnist_core.sweep.driver import SweepSummary, run_sweep
from mnist_core.sweep.reading import read_sweep

__all__ = ["SweepConfig", "SweepSummary", "load_sweep_config", "parse_sweep_config",
           "read_sweep", "run_sweep"]
