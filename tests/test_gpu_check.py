"""benchmarks/gpu_check.py in its CPU smoke mode: every check runs (or says why it is skipped)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_smoke_mode_runs_every_check_on_the_cpu(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ROBUSTPATH_CACHE_DIR": str(tmp_path / "cache")}
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--scratch", str(tmp_path / "scratch")],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = {line.split()[1]: line.split()[0] for line in completed.stdout.splitlines()
             if line.split() and line.split()[0] in ("PASS", "FAIL", "SKIP")}
    assert lines == {
        "environment": "PASS", "amp-compile": "SKIP", "oom-halving": "SKIP",
        "deterministic": "PASS", "torchrun-nccl": "PASS", "ratio": "PASS",
    }
    torchrun = next(line for line in completed.stdout.splitlines() if " torchrun-nccl " in line)
    assert "backend gloo, world size 1" in torchrun  # a one-process torchrun launch gets its process group
    assert "results.csv identical True" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "6 checks: 0 failed"
