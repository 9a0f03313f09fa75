"""Fixed cost of a run: a whole `robustpath eval` process against the bare forward passes it needs.

Workload: demo-ihc written as a PNG folder (400 patches of 40 px, benchmarks/_workloads.py),
customvit-demo, the linear probe and retrieval, every corruption of the preset (29 variants;
the engine forwards 3,760 images: 400 clean + 120 test images × 28 distinct pipelines).

(a) eval     ``python -m robustpath eval FOLDER ... -f csv --no-cache`` as a new process;
(b) forward  a new process that imports torch and loads the model, then runs the same
             number of images through ``encode_image`` at the same batch size (random
             normalised inputs, torch.inference_mode), nothing else.

Both with one torch thread (OMP_NUM_THREADS=1), interleaved (one of each per repeat, so
that load from other processes affects them alike); prints the medians of the wall-clock
times and their ratio (eval / forward), and the same for the CPU time (user + system) of
each process, which load from other processes changes far less than the wall clock (the
eval process scores tasks and prepares batches in threads beside the forward passes:
on idle cores its wall-clock ratio is below its CPU ratio, on saturated cores the two meet).  ``--python`` and ``--pythonpath`` run (a) from
another checkout (e.g. the main branch) for a before/after comparison.

    python benchmarks/fixed_cost.py --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPOSITORY = Path(__file__).resolve().parents[1]
MODEL = "customvit-demo"
BATCH_SIZE = 64

_FORWARD = """
import sys, time
import torch
from robustpath.models import load_encoder
torch.set_num_threads(1)
images, batch = int(sys.argv[1]), int(sys.argv[2])
encoder = load_encoder({model!r})
height, width = encoder.preprocessing.input_size
generator = torch.Generator().manual_seed(0)
inputs = torch.randn((batch, 3, height, width), generator=generator)
with torch.inference_mode():
    for start in range(0, images, batch):
        encoder.encode_image(inputs[: min(batch, images - start)]).float()
"""


def _environment(pythonpath: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(pythonpath)}


def _cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds) of ``command`` run to the end."""
    cpu, started = _cpu_seconds(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} … failed:\n{done.stderr[-2000:]}")
    return elapsed, cpu


def eval_command(python: str, data: Path, out: Path) -> list[str]:
    return [python, "-m", "robustpath", "eval", MODEL, "--data", str(data), "-t", "linear_probe", "-t", "retrieval",
            "--device", "cpu", "--no-cache", "--quiet", "-f", "csv", "-b", str(BATCH_SIZE), "--out", str(out),
            "--overwrite"]


def forwarded_images(out: Path) -> int:
    """The images the engine forwarded in the run written to ``out`` (run.json)."""
    return int(json.loads((out / "run.json").read_text())["embedding"]["images_forwarded"])


def main() -> None:
    from _workloads import write_patch_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--python", default=sys.executable, help="interpreter of the eval process")
    parser.add_argument("--pythonpath", type=Path, default=REPOSITORY, help="checkout the eval process imports")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data = write_patch_folder(root / "demo-png", 400)
        out = root / "run"
        eval_env = _environment(args.pythonpath)
        _timed(eval_command(args.python, data, out), eval_env, args.pythonpath)  # warm the file cache
        images = forwarded_images(out)
        forward = [sys.executable, "-c", _FORWARD.format(model=MODEL), str(images), str(BATCH_SIZE)]
        runs = {"eval": [], "forward": []}
        for _ in range(args.repeats):
            runs["eval"].append(_timed(eval_command(args.python, data, out), eval_env, args.pythonpath))
            runs["forward"].append(_timed(forward, _environment(REPOSITORY), REPOSITORY))
    print(f"images forwarded: {images} (batch size {BATCH_SIZE}, one torch thread), {args.repeats} repeats")
    for column, label in ((0, "wall-clock"), (1, "CPU (user + system)")):
        medians = {name: statistics.median(t[column] for t in times) for name, times in runs.items()}
        print(f"{label}:")
        for name, times in runs.items():
            print(f"  {name:<8} median {medians[name]:6.1f} s   runs: {', '.join(f'{t[column]:.1f}' for t in times)}")
        print(f"  ratio eval / forward: {medians['eval'] / medians['forward']:.2f}")


if __name__ == "__main__":
    main()
