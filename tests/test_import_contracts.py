"""The import-linter contracts of pyproject.toml: stages import downwards, corruptions stands alone.

The contracts run on this checkout, and on a copy with one upward import added, which they must
catch (so a contract that stopped checking anything would fail here too).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

REPOSITORY = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run the contracts of ``root/pyproject.toml`` on the packages in ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True)


def test_the_contracts_are_kept():
    done = lint_imports(REPOSITORY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "upward_import", "contract"),
    [
        ("robustpath/errors.py", "import robustpath.run.runner", "import downwards"),
        ("robustpath/tasks/metrics.py", "import robustpath.output.exports", "import downwards"),
        ("corruptions/__init__.py", "import robustpath.variants", "corruptions stands alone"),
    ],
)
def test_an_upward_import_breaks_a_contract(tmp_path, module, upward_import, contract):
    for folder in ("robustpath", "corruptions"):
        shutil.copytree(REPOSITORY / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPOSITORY / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a", encoding="utf-8") as handle:
        handle.write(f"\n{upward_import}  # noqa: E402\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    broken = [line for line in done.stdout.splitlines() if " BROKEN" in line]
    assert len(broken) == 1 and contract in broken[0], done.stdout
