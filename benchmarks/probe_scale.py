"""The linear probe's cost against the size of its training set, at a 1,024-wide embedding.

Synthetic clean training embeddings (G images × D dimensions, 4 classes: Gaussian class
centres + noise, float32) go through what ``LinearProbeTask.fit`` does: the cross-validated
choice of C (5 stratified folds × the 9 values of C_GRID, warm-started lbfgs to a gradient
tolerance of 1e-8, one BLAS thread) and the final fit; then the prediction of 2 × G test
embeddings.  Prints seconds per part, the iterations of the final fit, and the seconds per
1,000 training images (the CV grows at least linearly with G; more with harder fits).

    python benchmarks/probe_scale.py --sizes 2000 5000 10000 --dim 1024 [--solver torch]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def embeddings(count: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, count)
    centres = rng.normal(0.0, 1.0, (4, dim))
    return (centres[labels] + rng.normal(0.0, 6.0, (count, dim))).astype(np.float32), labels


def measure(count: int, dim: int, solver: str = "auto") -> dict:
    from robustpath.tasks import TaskContext
    from robustpath.tasks import linear_probe
    from robustpath.tasks.linear_probe import LinearProbeTask

    train, labels = embeddings(count, dim)
    test, test_labels = embeddings(2 * count, dim, seed=1)
    context = TaskContext(train_embeddings=train, train_labels=labels, test_labels=test_labels,
                          class_names=("a", "b", "c", "d"), seed=0)
    chooser = linear_probe.choose_regularisation
    timings = {}

    def timed_choice(*args, **kwargs):
        started = time.perf_counter()
        try:
            return chooser(*args, **kwargs)
        finally:
            timings["cv"] = time.perf_counter() - started

    linear_probe.choose_regularisation = timed_choice
    try:
        task = LinearProbeTask(solver=solver)
        started = time.perf_counter()
        task.fit(context)
        timings["fit"] = time.perf_counter() - started
    finally:
        linear_probe.choose_regularisation = chooser
    started = time.perf_counter()
    task.outcomes(test)
    timings["predict"] = time.perf_counter() - started
    facts = task.describe()
    return {"count": count, "dim": dim, **timings, "C": task.chosen_regularisation,
            "iterations": facts.get("final_fit", {}).get("iterations")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--solver", choices=("auto", "sklearn", "torch"), default="auto",
                        help="the probe's solver (auto: scikit-learn on a CPU); benchmarks/probe_solvers.py compares them")
    args = parser.parse_args()
    print(f"{'G':>7} {'D':>5} {'CV s':>8} {'final fit s':>11} {'predict 2G s':>12} {'C':>8} {'iters':>6} {'CV s/1k':>8}")
    for count in args.sizes:
        row = measure(count, args.dim, args.solver)
        final = row["fit"] - row["cv"]
        print(f"{row['count']:>7} {row['dim']:>5} {row['cv']:>8.1f} {final:>11.1f} {row['predict']:>12.1f} "
              f"{row['C']:>8g} {row['iterations']!s:>6} {row['cv'] / count * 1000:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
