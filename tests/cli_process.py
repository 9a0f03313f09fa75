"""Run the robustpath command line as a real process: ``python -m robustpath ...``.

The child runs the code under test (its folder first on PYTHONPATH), offline, on one
thread, with its own embedding cache and Hugging Face folders under the test's tmp_path.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import robustpath

SOURCE = str(Path(robustpath.__file__).resolve().parents[1])


def robustpath_command(*args) -> list[str]:
    return [sys.executable, "-m", "robustpath", *map(str, args)]


def environment(tmp_path: Path, **extra) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE, os.environ.get("PYTHONPATH")])),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "ROBUSTPATH_CACHE_DIR": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf-home"),
            "COLUMNS": "200", **{key: str(value) for key, value in extra.items()}}


def default_sigint() -> None:
    """In the child: Ctrl-C acts as in a terminal, even when the tests run in a background job."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(tmp_path: Path, *args, stdin=subprocess.DEVNULL, input: str | None = None, timeout: float = 600,
            **extra_env) -> subprocess.CompletedProcess:
    """Run ``robustpath ARGS`` to the end; stdout and stderr as text."""
    if input is not None:
        stdin = None
    return subprocess.run(robustpath_command(*args), env=environment(tmp_path, **extra_env), capture_output=True,
                          text=True, stdin=stdin, input=input, timeout=timeout, cwd=tmp_path)


def error_lines(completed: subprocess.CompletedProcess) -> list[str]:
    """The ``error:`` lines on stderr (a well-behaved failure has exactly one, and no traceback)."""
    assert "Traceback" not in completed.stderr, completed.stderr
    return [line for line in completed.stderr.splitlines() if line.startswith("error:")]


def one_error(completed: subprocess.CompletedProcess, code: int) -> str:
    """The single ``error:`` line of a run that failed with exit code ``code``."""
    assert completed.returncode == code, (completed.returncode, completed.stderr)
    lines = error_lines(completed)
    assert len(lines) == 1, completed.stderr
    return lines[0]


def notes(completed: subprocess.CompletedProcess) -> str:
    """stderr with rich's line wrapping undone, for matching long notes."""
    return " ".join(completed.stderr.split())
