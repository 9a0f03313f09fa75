"""The linear probe's two solvers: scikit-learn (scipy L-BFGS-B) against torch (float64 L-BFGS).

Synthetic clean training embeddings (G × D, 4 classes: Gaussian class centres + noise,
float32; ``probe_scale.embeddings``) and 2 G test embeddings.  Three parts:

1. Per G of --sizes: ``LinearProbeTask.fit`` (5-fold × 9-C cross-validation, then the
   final fit) with solver="sklearn" and solver="torch", interleaved, --repeats times;
   medians of the seconds, the chosen C of each, and how the torch probe's test
   predictions agree with scikit-learn's (share identical, max |Δ probability|).
2. What each idea of the torch cross-validation buys, at G = --ablation-size: the 45 fits
   one fold at a time from zero (cold), one fold at a time warm-started along C, the
   folds of a C side by side (one evaluation for all five) from zero, and side by side
   warm-started (what solver="torch" does); scikit-learn's warm-started loop beside them.
3. At G = --large (e.g. 50,000): the torch probe with 1 torch thread and with the default
   thread count (scikit-learn's too with --large-sklearn; it is slow).

Parts 1 and 2 run torch with --threads threads (default 1: scikit-learn's probe runs one
BLAS thread, and on a busy machine a second thread waits on the first).

The machine's load average is printed beside every figure: on a shared machine the
ratios measured in one run are the figures to quote.

    python benchmarks/probe_solvers.py --sizes 1000 2000 4000 --large 50000 --repeats 1
    python benchmarks/probe_solvers.py --sizes --ablation-size 0 --large 50000 --large-threads --large-sklearn
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_scale import embeddings  # noqa: E402


def load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def fitted_probe(solver: str, train, labels, test_labels, dim: int):
    from robustpath.tasks import TaskContext
    from robustpath.tasks.linear_probe import LinearProbeTask

    context = TaskContext(train_embeddings=train, train_labels=labels, test_labels=test_labels,
                          class_names=("a", "b", "c", "d"), seed=0)
    task = LinearProbeTask(solver=solver)
    started = time.perf_counter()
    task.fit(context)
    return task, time.perf_counter() - started


def compare_solvers(count: int, dim: int, repeats: int) -> None:
    train, labels = embeddings(count, dim)
    test, test_labels = embeddings(2 * count, dim, seed=1)
    seconds = {"sklearn": [], "torch": []}
    for _ in range(repeats):
        tasks = {}
        for solver in seconds:
            tasks[solver], elapsed = fitted_probe(solver, train, labels, test_labels, dim)
            seconds[solver].append(elapsed)
    reference, candidate = tasks["sklearn"].outcomes(test), tasks["torch"].outcomes(test)
    same = float(np.mean(reference.predictions == candidate.predictions))
    delta = float(np.abs(reference.probabilities - candidate.probabilities).max())
    sk, to = statistics.median(seconds["sklearn"]), statistics.median(seconds["torch"])
    print(f"{count:>7} {dim:>5} {sk:>9.1f} {to:>9.1f} {sk / to:>7.2f} {tasks['sklearn'].chosen_regularisation:>8g} "
          f"{tasks['torch'].chosen_regularisation:>8g} {same:>8.4f} {delta:>9.1e}  {load()}", flush=True)


def ablation(count: int, dim: int) -> None:
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    from robustpath.tasks.linear_probe import per_fold_scores
    from robustpath.tasks.probe_solver.probe_folds import joint_fold_scores

    train, labels = embeddings(count, dim)
    features = train.astype(np.float64)
    splits = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(features, labels))
    variants = {
        "sklearn, one fold at a time, warm starts": lambda: per_fold_scores(features, labels, splits, 0, "sklearn"),
        "torch, one fold at a time, cold": lambda: per_fold_scores(features, labels, splits, 0, "torch", warm_start=False),
        "torch, one fold at a time, warm starts": lambda: per_fold_scores(features, labels, splits, 0, "torch"),
        "torch, folds side by side, cold": lambda: joint_fold_scores(features, labels, splits, warm_start=False),
        "torch, folds side by side, warm starts": lambda: joint_fold_scores(features, labels, splits),
    }
    print(f"\ncross-validation alone at G = {count}, D = {dim} (5 folds × 9 C):")
    for name, run in variants.items():
        started = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):  # as LinearProbeTask.fit runs scikit-learn
            run()
        print(f"  {name:<44} {time.perf_counter() - started:>7.1f} s  {load()}", flush=True)


def large(count: int, dim: int, thread_counts: list[int], with_sklearn: bool) -> None:
    import torch

    train, labels = embeddings(count, dim)
    default_threads = torch.get_num_threads()
    print(f"\nG = {count}, D = {dim}: LinearProbeTask.fit (cross-validation + final fit)")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        task, elapsed = fitted_probe("torch", train, labels, labels, dim)
        print(f"  torch, {threads} thread(s): {elapsed:>7.1f} s  C = {task.chosen_regularisation:g}  "
              f"final fit {task.describe()['final_fit']}  {load()}", flush=True)
    torch.set_num_threads(default_threads)
    if with_sklearn:
        task, elapsed = fitted_probe("sklearn", train, labels, labels, dim)
        print(f"  sklearn (1 BLAS thread): {elapsed:>7.1f} s  C = {task.chosen_regularisation:g}  {load()}", flush=True)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 2000, 4000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ablation-size", type=int, default=2000, help="0: skip")
    parser.add_argument("--large", type=int, default=0, help="training images of the large run (0: skip)")
    parser.add_argument("--large-sklearn", action="store_true", help="also time scikit-learn at --large")
    parser.add_argument("--large-threads", type=int, nargs="*", default=None,
                        help="torch thread counts at --large (default: 1 and torch's default; none: torch skipped)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in parts 1 and 2")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    print(f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()} (default {default_threads}), {load()}")
    warm_up, warm_up_labels = embeddings(100, 8)
    for solver in ("sklearn", "torch"):  # imports and first-call costs out of the figures
        fitted_probe(solver, warm_up, warm_up_labels, warm_up_labels, 8)
    if args.sizes:
        print(f"{'G':>7} {'D':>5} {'sklearn s':>9} {'torch s':>9} {'ratio':>7} {'C sk':>8} {'C torch':>8} "
              f"{'same':>8} {'max dp':>9}")
    for count in args.sizes:
        compare_solvers(count, args.dim, args.repeats)
    if args.ablation_size:
        ablation(args.ablation_size, args.dim)
    if args.large:
        torch.set_num_threads(default_threads)
        counts = args.large_threads if args.large_threads is not None else sorted({1, default_threads})
        large(args.large, args.dim, counts, args.large_sklearn)


if __name__ == "__main__":
    main()
