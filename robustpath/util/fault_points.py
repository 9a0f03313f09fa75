"""A private testing hook: stop the process at a named step, so a test can kill or interrupt it there.

Not for users.  ``ROBUSTPATH_TEST_FAULT=<step>:kill`` makes the process send itself
SIGKILL when it reaches ``<step>``; ``<step>:pause`` makes the first process that
reaches it (the main process or a plot worker) create the file named by
``ROBUSTPATH_TEST_FAULT_MARKER`` and sleep ``ROBUSTPATH_TEST_FAULT_SECONDS`` seconds
(default 60), so that a test can send it a real signal there.  Unset, a step costs one
look-up in the environment.  The steps are listed in ``STEPS``.
"""
from __future__ import annotations

import os
import signal
import time

FAULT_ENV = "ROBUSTPATH_TEST_FAULT"
MARKER_ENV = "ROBUSTPATH_TEST_FAULT_MARKER"
SECONDS_ENV = "ROBUSTPATH_TEST_FAULT_SECONDS"

STEPS = {
    "run-started": "eval wrote its start record (run.json, OUT/.partial/run.json), before the sweep",
    "plot-job": "a plot job starts, in a plot worker or the main process",
    "publish-commit": "every output is written into OUT/.staging, before anything in OUT changes",
    "publish-outputs": "the first new output is moved into OUT, before the others, run.json and the file list",
    "publish-record": "the final run.json is in OUT, before the file list and the clean-up",
    "train-swap": "the new model folder is complete beside --out, before it replaces --out",
}


def fault_point(step: str) -> None:
    """Kill or pause this process here when ROBUSTPATH_TEST_FAULT names ``step``."""
    setting = os.environ.get(FAULT_ENV)
    if not setting:
        return
    if step not in STEPS:  # a typo in the code, not in the environment
        raise ValueError(f"unknown fault point '{step}'")
    name, _, action = setting.rpartition(":")
    if name != step:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause" and _first_to_arrive():
        time.sleep(float(os.environ.get(SECONDS_ENV, "60")))


def _first_to_arrive() -> bool:
    """Create the marker file; False when another process created it first."""
    marker = os.environ.get(MARKER_ENV)
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
