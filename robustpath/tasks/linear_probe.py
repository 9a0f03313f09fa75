"""Linear probe: logistic regression fitted once on clean training embeddings.

The probe never sees corrupted images: it is trained on the clean training
split and scored on each variant of the test split, so a drop measures how far
corruption moves embeddings away from what a clean-trained classifier expects.

Regularisation: the inverse strength C is chosen from C_GRID (10^-4 … 10^4) by
stratified 5-fold cross-validation on the (clean) training embeddings, scored by
held-out log-loss
(a proper scoring rule: no ties on small folds, and it favours calibrated
probabilities, which expected_calibration_error measures); ties go to the
smaller C.  The probe is then refitted on all its training embeddings with the
chosen C (recorded in describe()).  Features are standardised inside each fold.

Data scale: with ``samples_per_class`` > 0 the probe is trained on a seeded,
class-balanced subsample (seed, repeat, samples_per_class) of the training
split — classes with fewer images contribute all they have.
"""
from __future__ import annotations

import numpy as np

from robustpath.outcomes import Outcomes
from robustpath.tasks.base import OutcomeTask, TaskContext

DEFAULT_C = 1.0
C_GRID = tuple(float(c) for c in np.logspace(-4, 4, 9))
CV_FOLDS = 5
CV_SCORING = "neg_log_loss"
MAX_ITER = 2000


def class_balanced_subsample(labels: np.ndarray, samples_per_class: int, seed: int, repeat: int) -> np.ndarray:
    """(N,) labels → sorted indices of up to ``samples_per_class`` images per class."""
    rng = np.random.default_rng([seed, repeat, samples_per_class])
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.permutation(members)[:samples_per_class])
    return np.sort(np.concatenate(chosen))


def make_probe(regularisation: float, seed: int):
    """StandardScaler → LogisticRegression(lbfgs) pipeline with inverse strength C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=regularisation, max_iter=MAX_ITER, random_state=seed)
    )


def cross_validated_scores(features: np.ndarray, labels: np.ndarray, seed: int, folds: int) -> np.ndarray:
    """Mean held-out negative log-loss of each C in C_GRID → (len(C_GRID),) float.

    Stratified, shuffled folds (seed); the scaler is fitted inside each fold; C
    grows along the grid with warm starts (each fit starts from the previous
    solution; the converged optimum is the same as from scratch, only faster).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = np.zeros((folds, len(C_GRID)))
    for fold, (train, held_out) in enumerate(splitter.split(features, labels)):
        scaler = StandardScaler().fit(features[train])
        train_x, held_out_x = scaler.transform(features[train]), scaler.transform(features[held_out])
        model = LogisticRegression(max_iter=MAX_ITER, warm_start=True, random_state=seed)
        for column, c in enumerate(C_GRID):
            model.set_params(C=c).fit(train_x, labels[train])
            probabilities = model.predict_proba(held_out_x)
            scores[fold, column] = -log_loss(labels[held_out], probabilities, labels=model.classes_)
    return scores.mean(axis=0)


def choose_regularisation(features: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, dict]:
    """Cross-validated C from C_GRID (ties → the smaller C) → (C, facts for describe()).

    Falls back to DEFAULT_C when a class has fewer than 2 training images.
    """
    present = np.bincount(labels)
    smallest_class = int(present[present > 0].min()) if present.any() else 0
    folds = min(CV_FOLDS, smallest_class)
    if folds < 2 or len(np.unique(labels)) < 2:
        return DEFAULT_C, {"cv": f"skipped (a class has fewer than 2 images); C = {DEFAULT_C}"}
    scores = cross_validated_scores(features, labels, seed, folds)
    best = int(np.flatnonzero(scores == np.nanmax(scores))[0])
    facts = {
        "cv": f"{folds}-fold stratified, shuffled (seed {seed}), scoring {CV_SCORING}",
        "cv_mean_scores": {f"{c:g}": float(score) for c, score in zip(C_GRID, scores)},
    }
    return C_GRID[best], facts


class LinearProbeTask(OutcomeTask):
    name = "linear_probe"
    description = "logistic regression (C by cross-validation) on standardised clean training embeddings"
    metrics = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "expected_calibration_error", "flip_rate")

    def __init__(self, regularisation: float | None = None, samples_per_class: int = 0, repeat: int = 0) -> None:
        """regularisation: a fixed C, or None to choose it by cross-validation."""
        super().__init__()
        self.regularisation = regularisation
        self.samples_per_class = int(samples_per_class)
        self.repeat = int(repeat)
        self.chosen_regularisation: float | None = None
        self._facts: dict = {}
        self._pipeline = None

    def _fit(self, context: TaskContext) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from threadpoolctl import threadpool_limits

        labels = np.asarray(context.train_labels)
        rows = np.arange(len(labels))
        if self.samples_per_class:
            rows = class_balanced_subsample(labels, self.samples_per_class, context.seed, self.repeat)
        features = context.train_embeddings[rows].astype(np.float64)
        seed = context.seed + self.repeat
        counts = np.bincount(labels[rows], minlength=len(context.class_names))
        # Single-threaded BLAS: the products are thin (N × D by D × K), threads buy little and,
        # next to torch's own threads, oversubscribe the cores (measured: 15× slower on 2 busy cores).
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.regularisation is None:
                self.chosen_regularisation, self._facts = choose_regularisation(features, labels[rows], seed)
            else:
                self.chosen_regularisation, self._facts = float(self.regularisation), {"cv": "not used (C fixed)"}
            self._pipeline = make_probe(self.chosen_regularisation, seed)
            self._pipeline.fit(features, labels[rows])
        self._facts["training_images_per_class"] = {name: int(n) for name, n in zip(context.class_names, counts)}

    def predict(self, test_embeddings: np.ndarray) -> np.ndarray:
        """(N_test, D) → (N_test,) predicted class indices."""
        if self._pipeline is None:
            raise RuntimeError("fit() must be called before predict()")
        return self._pipeline.predict(test_embeddings.astype(np.float64))

    def predict_proba(self, test_embeddings: np.ndarray) -> np.ndarray:
        """(N_test, D) → (N_test, K) class probabilities (columns for every class, absent ones 0)."""
        if self._pipeline is None:
            raise RuntimeError("fit() must be called before predict_proba()")
        probabilities = self._pipeline.predict_proba(test_embeddings.astype(np.float64))
        full = np.zeros((len(test_embeddings), len(self.context.class_names)))
        full[:, self._pipeline.classes_] = probabilities
        return full

    def outcomes(self, test_embeddings: np.ndarray, train_embeddings: np.ndarray | None = None) -> Outcomes:
        return Outcomes(
            n_classes=len(self.context.class_names),
            labels=np.asarray(self.context.test_labels, dtype=np.int64),
            predictions=np.asarray(self.predict(test_embeddings), dtype=np.int64),
            probabilities=self.predict_proba(test_embeddings),
        )

    def describe(self) -> dict:
        return {
            "classifier": "sklearn LogisticRegression (lbfgs) after StandardScaler",
            "C": self.chosen_regularisation,
            "C_grid": list(C_GRID) if self.regularisation is None else None,
            **self._facts,
            "max_iter": MAX_ITER,
            "samples_per_class": self.samples_per_class or "all",
            "repeat": self.repeat,
            "trained_on": "clean training embeddings",
            "probabilities": "predict_proba (multinomial logistic regression)",
        }
