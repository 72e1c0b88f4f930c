"""The house's rules, read from the source: the trial core imports neither wing, the wings never
import each other, no module imports the jobs, and importing the library starts nothing."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "mnist_core"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "mnist_core" and parts[1] in (
        "sweep", "scoring") else None


@pytest.mark.parametrize("path", sorted(LIBRARY.rglob("*.py")),
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_imports_respect_the_layers(path):
    own = path.parent.name if path.parent != LIBRARY else None
    for module in _imports(path):
        assert not module.startswith("jobs"), f"{path.name} imports the jobs layer ({module})"
        wing = _wing(module)
        if wing is None:
            continue
        assert own == wing, f"{path.relative_to(ROOT)} imports the {wing} wing ({module})"


def test_importing_the_library_starts_nothing():
    code = ("import sys, mnist_core.sweep, mnist_core.scoring, mnist_core.reports, "
            "mnist_core.trial\nprint(sorted(m for m in ('ray', 'tensorflow', 'keras') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"
