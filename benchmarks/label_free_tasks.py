"""Time per variant of every task on synthetic embeddings: is identity retrieval and detectability cheap enough to run by default?

Random float32 embeddings (a few clusters, so neighbours are not uniform) of a
chosen size stand in for one run; each task is fitted once on the clean context,
then scored on one corrupted variant (clean + noise), the bootstrap included (as
the sweep does, per variant).  Prints seconds per variant per task.

    python benchmarks/label_free_tasks.py                         # demo-ihc size: 280 train / 120 test, D 192
    python benchmarks/label_free_tasks.py --train 7000 --test 3000 --dim 768
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def synthetic_context(train: int, test: int, dim: int, classes: int, seed: int):
    from robustpath.tasks import TaskContext

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    labels = rng.integers(0, classes, size=train + test)
    embeddings = (centres[labels] + rng.normal(size=(train + test, dim))).astype(np.float32)
    context = TaskContext(
        train_embeddings=embeddings[:train], train_labels=labels[:train], test_labels=labels[train:],
        class_names=tuple(f"class{k}" for k in range(classes)), seed=seed, clean_test_embeddings=embeddings[train:],
    )
    corrupted = (embeddings[train:] + 0.5 * rng.normal(size=(test, dim))).astype(np.float32)
    return context, corrupted


def main() -> None:
    from robustpath.tasks import create_task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=280)
    parser.add_argument("--test", type=int, default=120)
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    context, corrupted = synthetic_context(args.train, args.test, args.dim, args.classes, seed=0)
    print(f"train {args.train}, test {args.test}, dim {args.dim}: seconds per variant (best of {args.repeats})")
    for name in ("linear_probe", "retrieval", "embedding_drift", "identity", "detectability"):
        task = create_task(name)
        started = time.perf_counter()
        task.fit(context)
        fitted = time.perf_counter() - started
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            task.evaluate(corrupted)
            times.append(time.perf_counter() - started)
        print(f"  {name:16s} fit {fitted:7.3f} s   per variant {min(times):7.3f} s")


if __name__ == "__main__":
    main()
