"""Ctrl-C while a run writes its outputs: what does the folder hold afterwards?

Each trial starts `robustpath eval` (demo model, demo data, one corruption, default
formats: plots drawn by forked workers) in a process group of its own, waits until the
sweep is over and the outputs are being written (OUT/.staging, or the first output in
OUT), waits a random 0–400 ms and sends SIGINT to the whole group, as a terminal does.
Prints per trial and in total: the exit code, whether stderr holds a traceback, whether
outputs stand beside a run.json marked incomplete, and whether the same command then
finishes the run.

    python benchmarks/interrupt_trials.py --trials 16 --seed 0
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUTPUTS = ("results.csv", "report.md", "plots", "predictions.csv", "outcomes.npz")
WRITING = (".staging", ".publish", *OUTPUTS)


def trial(root: Path, delay: float) -> dict:
    out = root / "out"
    command = [sys.executable, "-m", "robustpath", "eval", "-c", "hue", "-s", "1", "-t", "retrieval", "--device", "cpu",
               "--quiet", "--out", str(out)]
    env = {**os.environ, "ROBUSTPATH_CACHE_DIR": str(root / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while process.poll() is None and not any((out / name).exists() for name in WRITING):
        time.sleep(0.005)
    time.sleep(delay)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    record = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    beside = not record.get("completed", True) and any((out / name).exists() for name in OUTPUTS)
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    finished = json.loads((out / "run.json").read_text()).get("completed") is True
    return {"code": process.returncode, "traceback_lines": sum(line.startswith(("Traceback", "  File")) for line in
                                                                 stderr.splitlines()),
            "outputs_beside_incomplete": beside, "rerun_code": rerun.returncode, "finished": finished}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = []
    for index in range(args.trials):
        root = Path(tempfile.mkdtemp(prefix="interrupt-trial-"))
        try:
            result = trial(root, rng.uniform(0, 0.4))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        results.append(result)
        print(f"trial {index + 1:2d}: {result}", flush=True)
    print(f"{len(results)} trials: exit 130 in {sum(r['code'] == 130 for r in results)}, "
          f"tracebacks in {sum(r['traceback_lines'] > 0 for r in results)}, "
          f"outputs beside an incomplete run.json in {sum(r['outputs_beside_incomplete'] for r in results)}, "
          f"re-run finished the run in {sum(r['finished'] for r in results)}")


if __name__ == "__main__":
    main()
