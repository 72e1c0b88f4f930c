"""report.html in a real headless browser: it loads with no console errors, shows every trial,
draws its charts, and its table sorts when a header is clicked."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jobs.report import main as report_main
from mnist_core.scoring.page import write_scoring_report
from mnist_core.sweep.config import parse_sweep_config
from mnist_core.sweep.driver import run_sweep

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium here (apt-get install chromium; CI installs it)")]

SWEEP = """
[sweep]
name = "page"
dataset = "digits"
samples = 10
[grid]
learning_rate = {loguniform = [0.05, 2.0]}
momentum = {uniform = [0.0, 0.9]}
epochs = [3]
"""
# Clicks the learning_rate header once (descending), records the first row's trial and the
# header's text, then filters to pruned trials and records the count shown.
CLICK = """<script>
const table = document.getElementById("trials-table");
const header = Array.from(table.tHead.rows[0].cells).find(
  (c) => c.dataset.key === "learning_rate");
header.click();
document.body.dataset.firstTrial = table.tBodies[0].rows[0].cells[0].textContent;
document.body.dataset.firstHeader = header.textContent;
const filter = document.querySelector("#trials select");
filter.value = "pruned"; filter.dispatchEvent(new Event("change"));
document.body.dataset.filtered = document.querySelector("#trials .controls span").textContent;
</script></body>"""


def _browse(page: Path, tmp_path: Path, width: int = 800) -> tuple[str, str]:
    """The DOM after the page's scripts ran (every chart drawn: #all), and the console log."""
    result = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--window-size={width},2000",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri() + "#all"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def _console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]


@pytest.fixture(scope="module")
def sweep_folder(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    run_sweep(parse_sweep_config(SWEEP), str(out), "page-1", show_progress=False)
    return out / "page-1"


def test_the_sweep_page_shows_every_trial_and_draws_its_charts(sweep_folder, tmp_path):
    dom, log = _browse(sweep_folder / "report.html", tmp_path)
    assert _console_errors(log) == []
    body = dom.split('id="trials-table"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<tr class=\"ok\">", body)) == 10
    charts = re.findall(r'<div id="([a-z0-9-]+)"[^>]*class="[^"]*js-plotly-plot', dom)
    assert {"confusion", "curves", "history", "all-curves", "importance", "slice-0",
            "slice-1", "parallel"} <= set(charts)
    assert dom.count('class="xtick"') >= 10 and dom.count('class="ytick"') >= 10  # real ticks
    assert "learning_rate (log)" in dom and "validation accuracy" in dom
    assert re.search(r"Best by validation accuracy: <b>t\d{4}-", dom)
    assert (sweep_folder / "plotly.min.js").is_file()


def test_clicking_a_header_sorts_the_trials(sweep_folder, tmp_path):
    import pyarrow.parquet as pq

    page = tmp_path / "page.html"
    shutil.copy(sweep_folder / "plotly.min.js", tmp_path / "plotly.min.js")
    page.write_text((sweep_folder / "report.html").read_text().replace("</body>", CLICK))
    dom, log = _browse(page, tmp_path)
    assert _console_errors(log) == []
    trials = pq.read_table(sweep_folder / "trials.parquet").to_pylist()
    first = re.search(r'data-first-trial="([^"]+)"', dom).group(1)
    highest = max(trials, key=lambda row: row["learning_rate"])["trial_id"]
    assert first == highest  # a new column sorts descending first, as the arrow says
    assert re.search(r'data-first-header="learning_rate ▼"', dom)
    assert 'data-filtered="0 of 10 shown"' in dom  # the status filter: no pruned trial


def test_jobs_report_rebuilds_the_page_from_the_files(sweep_folder):
    (sweep_folder / "report.html").unlink()
    assert report_main([str(sweep_folder)]) == 0
    assert "page-1" in (sweep_folder / "report.html").read_text()


def test_the_scoring_page_shows_accuracy_provenance_and_failures(ray_session, tmp_path):
    from jobs.score import main as score_main
    from mnist_core.config import ModelConfig
    from mnist_core.model import build_model
    from mnist_core.scoring.shards import write_shards

    images = np.random.default_rng(0).integers(0, 256, (900, 784), dtype=np.uint8)
    write_shards(str(tmp_path / "in"), "page", images, np.arange(900) % 10, 900, 300)
    (tmp_path / "in" / "broken.parquet").write_bytes(b"not parquet")
    build_model(ModelConfig(), 784).save(tmp_path / "model.keras")
    out = tmp_path / "out"
    assert score_main(["--model", str(tmp_path / "model.keras"), "--input",
                       str(tmp_path / "in"), "--out", str(out), "--no-progress"]) == 1
    dom, log = _browse(Path(write_scoring_report(str(out))), tmp_path)
    assert _console_errors(log) == []
    shards = dom.split('id="shards-table"', 1)[1].split("</table>", 1)[0]
    assert shards.count("part-0000") == 3 and "broken.parquet" in shards
    assert "900 images scored" in dom and "unreadable shard" in dom
    assert "on the 900 images whose input carries a label" in dom
    assert str(tmp_path / "model.keras") in dom
    charts = re.findall(r'<div id="([a-z0-9-]+)"[^>]*class="[^"]*js-plotly-plot', dom)
    assert {"labels", "confidence", "confusion"} <= set(charts)


# Records, for every drawn chart, whether its title's box meets Plotly's toolbar's.
GEOMETRY = """<script>
const under = [];
for (const plot of document.querySelectorAll(".js-plotly-plot")) {
  const title = plot.querySelector(".gtitle"), bar = plot.querySelector(".modebar");
  if (!title || !bar) { continue; }
  const a = title.getBoundingClientRect(), b = bar.getBoundingClientRect();
  if (a.right > b.left && a.left < b.right && a.bottom > b.top && a.top < b.bottom) {
    under.push(plot.id + ":" + [a.left, a.right, a.top, a.bottom, b.left, b.right, b.top,
                                b.bottom].map(Math.round).join("/"));
  }
}
document.body.dataset.titled = document.querySelectorAll(".js-plotly-plot .gtitle").length;
document.body.dataset.underToolbar = under.join(",") || "none";
document.body.dataset.columns = Array.from(
  document.querySelectorAll("#trials-table th")).map((th) => th.dataset.key).join(",");
</script></body>"""


def _browse_with(script: str, page: Path, tmp_path: Path, width: int = 640) -> str:
    """The DOM of ``page`` with ``script`` run after its own, in a window ``width`` px wide
    (narrow: where a title and the toolbar meet first)."""
    shutil.copy(page.parent / "plotly.min.js", tmp_path / "plotly.min.js")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", script))
    dom, log = _browse(probe, tmp_path, width)
    assert _console_errors(log) == []
    return dom


def test_no_chart_title_runs_under_the_toolbar_and_no_column_is_all_blank(sweep_folder,
                                                                         tmp_path):
    dom = _browse_with(GEOMETRY, sweep_folder / "report.html", tmp_path)
    assert int(re.search(r'data-titled="(\d+)"', dom).group(1)) >= 8
    assert re.search(r'data-under-toolbar="([^"]*)"', dom).group(1) == "none"
    columns = re.search(r'data-columns="([^"]*)"', dom).group(1).split(",")
    assert "rung" not in columns and "error" not in columns  # a plain search: all blank
    assert {"trial_id", "status", "val_accuracy", "learning_rate"} <= set(columns)
    choice = re.search(r"<h2>The choice</h2><p>(.*?)</p>", dom)
    assert choice is None or len(re.findall(r"t\d{4}-[0-9a-f]{8}", choice.group(1))) == 1


def test_a_fashion_trial_page_names_its_classes_and_shows_its_hyperparameters(tmp_path):
    from mnist_core.config import TrialConfig
    from mnist_core.reports import confusion_rows, write_trial_page

    row = TrialConfig(learning_rate=0.25).as_record() | {
        "dataset": "fashion_mnist", "test_accuracy": 0.8, "test_loss": 0.5, "best_epoch": 2,
        "params": 7960}
    epochs = [{"trial_id": "t", "epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5,
               "val_loss": 1.0, "val_accuracy": 0.5} for epoch in (1, 2)]
    cells = confusion_rows("t", np.eye(10, dtype=int) * 10)
    page = Path(write_trial_page(str(tmp_path / "train"), "t", row, epochs, cells))
    dom = _browse_with(GEOMETRY, page, tmp_path)
    assert "9 Ankle boot" in dom and "0 T-shirt/top" in dom
    table = dom.split('id="hyperparameters-table"', 1)[1].split("</table>", 1)[0]
    assert "learning_rate" in table and "0.25" in table and "hidden_units" in table
    assert re.search(r'data-under-toolbar="([^"]*)"', dom).group(1) == "none"
