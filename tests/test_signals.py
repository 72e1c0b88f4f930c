"""SIGTERM (what Kubernetes and ``ray job stop`` send) exits 143 and SIGINT 130 at any moment of
a sweep or a scoring run, leaving a folder that a rerun finishes and no process behind.

Run with ``.venv/bin/python -m pytest tests/test_signals.py``. Each case starts the real job
in a session of its own and signals it the moment a file shows where it is.
"""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _processes import signal_when

from mnist_core.config import ModelConfig
from mnist_core.model import build_model
from mnist_core.scoring.shards import write_shards

pytestmark = pytest.mark.slow

SWEEP = """
[sweep]
name = "stopped"
dataset = "digits"
validation_split = 0.1
[grid]
activation = ["sigmoid", "relu"]
learning_rate = [0.5]
epochs = [30]
[selection]
refit = true
[resources]
pack_size = 1
"""
# Where a sweep is, told by the files it has written by then.
SWEEP_MOMENTS = {
    "starting Ray": "*/.lock",  # the folder is claimed and locked; Ray starts next
    "refitting": "*/trials.parquet",  # compacted: the choice and its refit follow
    "writing the page": "*/best/model_validation.keras",  # refit kept: the page follows
}
SCORING_MOMENTS = {
    "starting": ".lock",  # inputs checked, the folder locked
    "loading the model": "logs/score.log",  # Keras loading the model; Ray not yet started
    "scoring": "predictions/*/*.parquet",  # a shard is committed
}


def _ready(root: Path, pattern: str):
    return lambda: any(root.glob(pattern))


# SIGTERM mid-training, with the resume hint and MLflow's status: tests/test_sweep.py.
@pytest.mark.parametrize(("moment", "sent", "code"), [
    ("starting Ray", signal.SIGTERM, 143), ("refitting", signal.SIGINT, 130),
    ("writing the page", signal.SIGTERM, 143),
])
def test_a_signal_at_any_moment_of_a_sweep_exits_its_code_and_resume_finishes_it(
        ray_session, tmp_path, moment, sent, code):
    from jobs.sweep import main

    config, out = tmp_path / "stopped.toml", tmp_path / "runs"
    config.write_text(SWEEP)
    command = [sys.executable, "-m", "jobs.sweep", "--config", str(config), "--out", str(out),
               "--no-progress"]
    stopped, stderr, left = signal_when(command, _ready(out, SWEEP_MOMENTS[moment]), sent=sent)
    assert stopped == code, stderr
    assert "Traceback" not in stderr and left == []
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    assert (folder / "sweep.toml").is_file(), "a stopped sweep can always be resumed"
    assert main(["--resume", folder.name, "--out", str(out), "--no-progress"]) == 0
    assert pq.read_table(folder / "trials.parquet").num_rows == 2
    assert (folder / "best" / "model_validation.keras").is_file()
    assert (folder / "report.html").is_file()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A model and 30 shards of 200 images (committed one at a time, so a stop lands midway)."""
    import keras

    root = tmp_path_factory.mktemp("scoring")
    keras.utils.set_random_seed(0)
    build_model(ModelConfig((16,), "relu"), 784).save(root / "model.keras")
    images = np.random.default_rng(2).integers(0, 256, (600, 784), dtype=np.uint8)
    write_shards(str(root / "in"), "s", images, np.zeros(600, np.int32), 6000, 200)
    return root


@pytest.mark.parametrize(("moment", "sent", "code"), [
    *((moment, signal.SIGTERM, 143) for moment in SCORING_MOMENTS),
    ("scoring", signal.SIGINT, 130),
])
def test_a_signal_at_any_moment_of_scoring_exits_its_code_and_a_rerun_finishes(
        ray_session, tmp_path, shards, moment, sent, code):
    from jobs.score import main

    out = tmp_path / "out"
    argv = ["--model", str(shards / "model.keras"), "--input", str(shards / "in"),
            "--out", str(out)]
    stopped, stderr, left = signal_when([sys.executable, "-m", "jobs.score", *argv,
                                         "--no-progress"],
                                        _ready(out, SCORING_MOMENTS[moment]), sent=sent)
    assert stopped == code, stderr
    assert "Traceback" not in stderr and left == []
    if moment == "scoring":  # the command that finishes it
        assert "-m jobs.score --model" in stderr
    assert main(argv) == 0
    ids = pq.read_table(out / "predictions").column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 6000


def _python(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("sent", "printed"), [
    (["SIGTERM"], ["carried on", "stopped 143"]),  # held until the block ends
    (["SIGINT", "SIGINT"], ["stopped 130"]),  # a second one stops at once
])
def test_a_signal_while_ray_starts_is_held_until_the_start_ends(sent, printed):
    kills = "".join(f"\n                os.kill(os.getpid(), signal.{name})" for name in sent)
    held = _python(f"""
        import os, signal
        from mnist_core import signals
        signals.stop_on_sigterm()
        try:
            with signals.held():{kills}
                print("carried on")
        except KeyboardInterrupt as interrupt:
            print("stopped", signals.interrupted_exit_code(interrupt))
    """)
    assert held.stdout.splitlines() == printed, held.stderr


def test_an_exit_that_an_import_swallowed_still_stops_the_job_before_it_starts():
    swallowed = _python("""
        import os, signal, sys
        from mnist_core.signals import exit_at_once
        from jobs._cli import run
        signal.signal(signal.SIGTERM, exit_at_once)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except SystemExit:
            pass  # as a compiled module's import does with an exception it cannot raise
        sys.exit(run(lambda argv: print("the job ran") or 0, []))
    """)
    assert swallowed.returncode == 143 and "the job ran" not in swallowed.stdout
