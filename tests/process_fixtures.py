"""Run the robustpath command line in real subprocesses: for kills, Ctrl-C and racing writers.

Import into a test module: ``from process_fixtures import robustpath_command, environment, ...``.
The subprocesses run the code under test (this checkout first on PYTHONPATH), offline,
on one thread, with the cache in the test's own folder.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import robustpath

SOURCE = str(Path(robustpath.__file__).resolve().parents[1])


def robustpath_command(*args) -> list[str]:
    return [sys.executable, "-m", "robustpath", *map(str, args)]


def environment(tmp_path: Path, **extra) -> dict:
    """The subprocess environment (its own embedding cache and Hugging Face folders under ``tmp_path``);
    ``extra`` adds variables such as ROBUSTPATH_TEST_FAULT."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE, os.environ.get("PYTHONPATH")])),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "ROBUSTPATH_CACHE_DIR": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf-home"),
            "COLUMNS": "200", **{key: str(value) for key, value in extra.items()}}


def fault(tmp_path: Path, step: str, action: str, seconds: float = 60) -> dict:
    """Environment variables of the private testing hook (robustpath.util.fault_points): stop at ``step``."""
    return {"ROBUSTPATH_TEST_FAULT": f"{step}:{action}", "ROBUSTPATH_TEST_FAULT_MARKER": str(tmp_path / f"{step}.reached"),
            "ROBUSTPATH_TEST_FAULT_SECONDS": str(seconds)}


def default_sigint() -> None:
    """In the child: Ctrl-C acts as in a terminal, even when the tests run in a background job
    (non-interactive shells start background jobs with SIGINT ignored, and Python keeps that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(args, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``robustpath ARGS`` to the end."""
    return subprocess.run(robustpath_command(*args), env=env, capture_output=True, text=True, timeout=timeout)


def start(args, env: dict) -> subprocess.Popen:
    """Start ``robustpath ARGS`` in a process group of its own (a test can signal it and its children,
    as a terminal's Ctrl-C does), with Ctrl-C acting as in a terminal."""
    return subprocess.Popen(robustpath_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint, start_new_session=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until ``path`` exists (a fault point was reached); fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} did not appear"
        time.sleep(0.02)


def run_cli(tmp_path: Path, *args, stdin=subprocess.DEVNULL, input: str | None = None, timeout: float = 600,
            **extra_env) -> subprocess.CompletedProcess:
    """Run ``robustpath ARGS`` to the end in ``tmp_path``; stdout and stderr as text."""
    if input is not None:
        stdin = None
    return subprocess.run(robustpath_command(*args), env=environment(tmp_path, **extra_env), capture_output=True,
                          text=True, stdin=stdin, input=input, timeout=timeout, cwd=tmp_path)


def error_lines(output: "str | subprocess.CompletedProcess") -> list[str]:
    """The ``error:`` lines of stderr (given as text or as a finished process); a finished process
    must show no traceback (a well-behaved failure has exactly one error line)."""
    if isinstance(output, subprocess.CompletedProcess):
        assert "Traceback" not in output.stderr, output.stderr
        output = output.stderr
    return [line for line in output.splitlines() if line.startswith("error:")]


def one_error(completed: subprocess.CompletedProcess, code: int) -> str:
    """The single ``error:`` line of a run that failed with exit code ``code``."""
    assert completed.returncode == code, (completed.returncode, completed.stderr)
    lines = error_lines(completed)
    assert len(lines) == 1, completed.stderr
    return lines[0]


def notes(completed: subprocess.CompletedProcess) -> str:
    """stderr with rich's line wrapping undone, for matching long notes."""
    return " ".join(completed.stderr.split())
