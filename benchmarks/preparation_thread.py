"""Does preparing the next batch in a background thread pay off?  End-to-end runs with the
thread (robustpath.embedding.prefetch) and with preparation in the main thread, interleaved.

Prints per repeat and as medians: end-to-end wall time, embedding phase, forward passes
inside it, writing outputs; and the bare forward passes for the same images.

    python benchmarks/preparation_thread.py --workload W2 --repeats 3 --threads 1
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def in_main_thread():
    """A Prefetch that prepares each pass when it is taken, in the caller's thread."""
    from robustpath.embedding import prefetch

    class InMainThread(prefetch.Prefetch):
        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return None

        def __iter__(self):
            for begin, end, pieces, compute in self._spans:
                if not compute:
                    yield begin, end, pieces, None
                    continue
                buffer = self._free.get()
                started = time.perf_counter()
                filled = self._prepare(pieces, buffer)
                yield begin, end, pieces, prefetch.Prepared(buffer[:filled], time.perf_counter() - started,
                                                            self._free, buffer)

    return InMainThread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="W2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch

    import sweep_speed
    from _workloads import workloads
    from robustpath.embedding import engine
    from robustpath.embedding import prefetch

    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="robustpath-bench-"))
    workload = workloads(scratch)[args.workload]
    sweep_speed.run_e2e(workload, args.batch_size, "cpu", scratch, corruptions=("hue", "gaussian_blur"), severities=(1, 2))
    modes = {"thread": prefetch.Prefetch, "main thread": in_main_thread()}
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in [*modes, "bare forward"]}
    for repeat in range(args.repeats):
        for name, implementation in modes.items():
            engine.Prefetch = implementation
            try:
                wall, _, record = sweep_speed.run_e2e(workload, args.batch_size, "cpu", scratch)
            finally:
                engine.Prefetch = prefetch.Prefetch
            rows[name].append((wall, record["timings_seconds"]["embed"], record["benchmark"]["wall"],
                               record["benchmark"]["write"]))
        images = record["embedding"]["images_forwarded"]
        rows["bare forward"].append((sweep_speed.run_forward_only(workload, images, args.batch_size, "cpu")[0],))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {values[-1][0]:.1f} s" for name, values in rows.items()),
              flush=True)
    labels = ("end to end", "embedding", "forward inside", "writing")
    for name, values in rows.items():
        medians = [statistics.median(v[i] for v in values) for i in range(len(values[0]))]
        print(f"{name:14s} medians: " + ", ".join(f"{label} {m:.2f} s" for label, m in zip(labels, medians)))


if __name__ == "__main__":
    main()
