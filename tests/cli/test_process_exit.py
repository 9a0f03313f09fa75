"""The end of a robustpath process (robustpath.cli.run): the exit status and output of a normal exit,
the atexit handlers run, the interpreter's module-by-module teardown skipped, and a running
non-daemon thread still waited for."""
from __future__ import annotations

import subprocess
import sys

import pytest
from process_fixtures import environment

# A global of __main__ whose __del__ runs only when the interpreter tears the modules down.
PRELUDE = (
    "import atexit, sys, threading, time\n"
    "class Marker:\n"
    "    def __del__(self):\n"
    "        sys.stderr.write('torn down\\n')\n"
    "marker = Marker()\n"
    "atexit.register(lambda: sys.stderr.write('atexit ran\\n'))\n"
)


def run_entry_point(tmp_path, args: list[str], before: str = "") -> subprocess.CompletedProcess:
    """``robustpath ARGS`` through the console-script entry point, after PRELUDE and ``before``."""
    script = PRELUDE + before + f"sys.argv = ['robustpath', *{args!r}]\nfrom robustpath.cli import run\nrun()\n"
    return subprocess.run([sys.executable, "-c", script], env=environment(tmp_path), capture_output=True, text=True,
                          timeout=120)


def test_a_successful_command_keeps_its_output_and_atexit_handlers_and_skips_the_teardown(tmp_path):
    done = run_entry_point(tmp_path, ["corruptions", "--preset", "pathology"])
    assert done.returncode == 0, done.stderr
    assert "gaussian_blur" in done.stdout and done.stdout.endswith("\n")  # flushed to the end
    assert "atexit ran" in done.stderr
    assert "torn down" not in done.stderr  # a normal interpreter exit would have called Marker.__del__


def test_the_control_a_plain_exit_tears_the_modules_down(tmp_path):
    script = PRELUDE + "sys.exit(0)\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "atexit ran" in done.stderr and "torn down" in done.stderr  # what the test above relies on


@pytest.mark.parametrize(("args", "status"), [(["no-such-command"], 2), (["corruptions", "--preset", "no-such-preset"], 2)])
def test_a_failing_command_keeps_its_exit_status_and_its_error_line(tmp_path, args, status):
    done = run_entry_point(tmp_path, args)
    assert done.returncode == status, done.stderr
    assert "error:" in done.stderr and "Traceback" not in done.stderr
    assert "atexit ran" in done.stderr


def test_a_running_non_daemon_thread_is_waited_for(tmp_path):
    before = ("def late():\n"
              "    time.sleep(1.0)\n"
              "    sys.stdout.write('thread finished\\n')\n"
              "threading.Thread(target=late, name='user-thread').start()\n")
    done = run_entry_point(tmp_path, ["--help"], before)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("thread finished\n")
    assert "torn down" in done.stderr  # the normal exit, which joins the thread
