"""Regenerate docs/report.png and docs/scoring.png: ``make screenshots``.

Runs what a new user runs — the quick sweep (``make sweep``) and the scoring demo (``make
score``) — in a temporary folder with the paths a user's clone has (``runs/``, ``scores/demo``),
so the pages show those and not the folder's; then photographs both ``report.html`` pages
with headless Chromium (Debian's ``chromium``; ``--virtual-time-budget`` lets Plotly draw
first).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 1280, 1600


def main() -> None:
    """Run the sweep and the scoring demo, then write both screenshots into docs/."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("error: chromium not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        shutil.copytree(ROOT / "configs", folder / "configs")
        _job(folder, "jobs.sweep", "--config", "configs/quick.toml", "--out", "runs",
             "--no-progress")
        _job(folder, "jobs.score_demo", "--runs", "runs", "--out", "scores/demo")
        (sweep,) = [path for path in (folder / "runs").iterdir()
                    if path.name.startswith("quick-")]
        _photograph(browser, sweep / "report.html", ROOT / "docs" / "report.png")
        _photograph(browser, folder / "scores" / "demo" / "report.html",
                    ROOT / "docs" / "scoring.png")


def _job(folder: Path, *argv: str) -> None:
    subprocess.run([sys.executable, "-m", *argv], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)


def _photograph(browser: str, page: Path, image: Path) -> None:
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}",
                    "--virtual-time-budget=10000", f"--screenshot={image}", page.as_uri()],
                   check=True, capture_output=True)
    print(f"wrote {image.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
