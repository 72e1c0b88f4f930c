"""``jobs.report`` and ``--resume`` on damaged or full storage: one line naming the file, a
distinct exit code, and never a good page replaced by an empty one.

Run with ``.venv/bin/python -m pytest tests/test_report_job.py``.
"""

import shutil
import subprocess

import pytest

from jobs._cli import run
from jobs.report import main as report
from jobs.sweep import main as sweep

pytestmark = pytest.mark.slow

CONFIG = """
[sweep]
name = "damaged"
dataset = "digits"
validation_split = 0.1
[grid]
activation = ["sigmoid", "relu"]
learning_rate = [0.5]
epochs = [2]
"""


@pytest.fixture(scope="module")
def finished(ray_session, tmp_path_factory):
    """A finished sweep's folder (copied by each test that damages it)."""
    root = tmp_path_factory.mktemp("sweep")
    config = root / "damaged.toml"
    config.write_text(CONFIG)
    assert sweep(["--config", str(config), "--out", str(root / "runs"), "--no-progress"]) == 0
    (folder,) = [path for path in (root / "runs").iterdir() if path.is_dir()]
    return folder


def _copy(finished, tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(finished, out / finished.name)
    return out, out / finished.name


@pytest.mark.parametrize("damage", [
    lambda text: text[:len(text) // 2],  # truncated
    lambda text: "[1, 2]",  # JSON, but not a record
    lambda text: text.replace('"trial_id"', '"trial"', 1),  # a record missing its trial
])
def test_a_damaged_best_json_is_one_line_exit_3_for_the_page_and_resume(finished, tmp_path,
                                                                         capsys, damage):
    out, folder = _copy(finished, tmp_path)
    record = folder / "best" / "best.json"
    record.write_text(damage(record.read_text()))
    page = (folder / "report.html").read_bytes()
    for job, argv in ((report, [str(folder)]),
                      (sweep, ["--resume", folder.name, "--out", str(out), "--no-progress"])):
        capsys.readouterr()
        assert run(job, argv) == 3
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"error: {record}: not a")
    assert (folder / "report.html").read_bytes() == page


def test_a_lost_trials_file_is_refused_and_the_page_kept(finished, tmp_path, capsys):
    _, folder = _copy(finished, tmp_path)
    (folder / "trials.parquet").unlink()
    page = (folder / "report.html").read_bytes()
    assert run(report, [str(folder)]) == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {folder / 'trials.parquet'}: missing")
    assert (folder / "report.html").read_bytes() == page


def test_a_disk_that_fills_while_the_page_is_written_is_one_line(finished, tmp_path, capsys):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tiny)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        folder = tiny / finished.name
        shutil.copytree(finished, folder, ignore=shutil.ignore_patterns("plotly.min.js",
                                                                        "model*.keras"))
        assert run(report, [str(folder)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == (f"error: {folder / 'plotly.min.js'}: No space left on device; the "
                        "page was not written")
    finally:
        subprocess.run(["umount", "--lazy", str(tiny)], check=True)
