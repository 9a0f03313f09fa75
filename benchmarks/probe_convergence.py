"""Does the linear probe's cross-validation score converged fits, and what does it cost?

For each case, prints per C of the grid: robustpath's mean held-out log-loss (lbfgs,
then Newton-CG where lbfgs has not converged in 100 iterations: linear_probe.fit_converged),
the same with lbfgs alone (tolerance 1e-8, warm starts: robustpath before Newton-CG),
with scikit-learn's default tolerance (1e-4, warm starts, 2,000 iterations: robustpath
before converged fits were required), and GridSearchCV with fresh fits run to
convergence (tolerance 1e-12; same folds, scaler inside each fold); then the chosen C
of each, the C left out, and the median time of the cross-validation.

Cases: the demo (customvit-demo embeddings of demo-ihc's 280 training patches,
128 dimensions, 3 classes), the demo's data-scale probe at 16 per class, and a
harder synthetic one (2,000 embeddings of 512 dimensions, 2 overlapping classes,
3 % of labels flipped: the shape of a foundation-model probe on a binary task).

    python benchmarks/probe_convergence.py --repeats 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def demo_training_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """customvit-demo embeddings (280, 128) float64 and labels of demo-ihc's training split."""
    import torch

    from robustpath.data import load_dataset
    from robustpath.models import load_encoder
    from robustpath.models.preprocess import normalise, resize_to_input

    dataset = load_dataset("demo-ihc")
    train = dataset.indices("train")
    encoder = load_encoder("customvit-demo")
    images = torch.from_numpy(np.stack([dataset.read_image(int(i)) for i in train])).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        x = normalise(resize_to_input(images, encoder.preprocessing), encoder.preprocessing)
        features = encoder.encode_image(x).double().numpy()
    return features, dataset.labels[train]


def overlapping_classes(count=2000, dimensions=512, flipped=0.03, seed=1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.arange(1, dimensions + 1) ** 0.5  # a decaying spectrum, like real embeddings
    centres = rng.normal(0, 1, (2, dimensions)) * scales * 0.2
    labels = np.arange(count) % 2
    features = centres[labels] + rng.normal(0, 1, (count, dimensions)) * scales
    labels = np.where(rng.random(count) < flipped, 1 - labels, labels)
    return features, labels


def lbfgs_alone_scores(features, labels, tolerance: float, max_iter: int, seed=0, folds=5) -> np.ndarray:
    """Mean held-out negative log-loss per C of lbfgs alone (tolerance, max_iter), warm starts along C_GRID."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from robustpath.tasks.linear_probe import C_GRID

    scores = np.zeros((folds, len(C_GRID)))
    for fold, (train, held_out) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels)):
        scaler = StandardScaler().fit(features[train])
        model = LogisticRegression(tol=tolerance, max_iter=max_iter, warm_start=True, random_state=seed)
        for column, c in enumerate(C_GRID):
            model.set_params(C=c).fit(scaler.transform(features[train]), labels[train])
            probabilities = model.predict_proba(scaler.transform(features[held_out]))
            scores[fold, column] = -log_loss(labels[held_out], probabilities, labels=model.classes_)
    return scores.mean(axis=0)


def fresh_fit_scores(features, labels, seed=0, folds=5) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from robustpath.tasks.linear_probe import C_GRID

    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(tol=1e-12, max_iter=200_000)),
        {"logisticregression__C": list(C_GRID)}, scoring="neg_log_loss",
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed), refit=False,
    )
    return search.fit(features, labels).cv_results_["mean_test_score"]


def measure(name: str, features: np.ndarray, labels: np.ndarray, repeats: int) -> None:
    from robustpath.tasks.linear_probe import C_GRID, MAX_ITER, TOLERANCE, choose_regularisation

    times, lbfgs_times, previous_times = [], [], []
    for _ in range(repeats):  # interleaved
        started = time.perf_counter()
        chosen, facts = choose_regularisation(features, labels, seed=0)
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        lbfgs = lbfgs_alone_scores(features, labels, TOLERANCE, MAX_ITER)
        lbfgs_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        previous = lbfgs_alone_scores(features, labels, 1e-4, 2000)
        previous_times.append(time.perf_counter() - started)
    reference = fresh_fit_scores(features, labels)
    ours = np.array([np.nan if facts["cv_mean_scores"][f"{c:g}"] is None else facts["cv_mean_scores"][f"{c:g}"]
                     for c in C_GRID])
    print(f"\n{name}: {features.shape[0]} × {features.shape[1]}, {len(np.unique(labels))} classes")
    print(f"{'C':>8} {'robustpath':>11} {'lbfgs':>8} {'tol 1e-4':>10} {'fresh fits':>11} {'|ours-fresh|':>13} "
          f"{'|lbfgs-fresh|':>14} {'|1e-4-fresh|':>13}")
    for column, c in enumerate(C_GRID):
        print(f"{c:>8g} {ours[column]:>11.4f} {lbfgs[column]:>8.4f} {previous[column]:>10.4f} {reference[column]:>11.4f} "
              f"{abs(ours[column] - reference[column]):>13.5f} {abs(lbfgs[column] - reference[column]):>14.5f} "
              f"{abs(previous[column] - reference[column]):>13.5f}")
    print(f"chosen C: robustpath {chosen:g}, lbfgs alone {C_GRID[int(np.argmax(lbfgs))]:g}, "
          f"tolerance 1e-4 {C_GRID[int(np.argmax(previous))]:g}, fresh fits {C_GRID[int(np.argmax(reference))]:g}; "
          f"left out: {facts.get('cv_left_out') or 'none'}")
    print(f"cross-validation time (median of {repeats}): robustpath {statistics.median(times):.2f} s, "
          f"lbfgs alone {statistics.median(lbfgs_times):.2f} s, tolerance 1e-4 {statistics.median(previous_times):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from robustpath.tasks.linear_probe import class_balanced_subsample

    warnings.simplefilter("ignore")  # ConvergenceWarning of the tolerance-1e-4 fits
    features, labels = demo_training_embeddings()
    subsample = class_balanced_subsample(labels, 16, seed=0, repeat=0)
    with threadpool_limits(limits=1, user_api="blas"):  # as the probe runs inside an evaluation
        measure("demo-ihc · customvit-demo", features, labels, args.repeats)
        measure("demo-ihc · customvit-demo, 16 per class", features[subsample], labels[subsample], args.repeats)
        measure("harder: overlapping classes", *overlapping_classes(), args.repeats)


if __name__ == "__main__":
    main()
