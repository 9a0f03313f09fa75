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

Convergence: every fit (each fold and C, and the final one) runs to a gradient
tolerance of TOLERANCE (1e-8; lbfgs, or Newton-CG as below) and is then checked
(has_converged, with the gradient of scikit-learn's objective computed here). At
large C the objective is nearly flat (its L2 term is ||W||² / (2 C N)):
scikit-learn's default tolerance (1e-4) stops far from the optimum there, where the
held-out log-loss was off by up to 0.56 on demo-ihc. A C whose fit did not converge
in every fold is left out of the choice (describe() says which, and note() says so
in the run's notes). Held-out scores agree with fresh fits run to convergence
(GridSearchCV, tested) within 0.005 log-loss.

Cross-validation fits (scikit-learn solver; fit_converged): lbfgs runs for at most
LBFGS_FIRST_ITER iterations; a fit that has not converged by then continues with
Newton-CG from lbfgs' solution, and one that Newton-CG does not converge either
resumes lbfgs from there with the full MAX_ITER.  At large C the objective is
nearly flat and lbfgs needs hundreds of iterations (150–1,300 on the demo) where
Newton steps, which use the curvature, converge in a few; both minimise the same
strictly convex objective to the same tolerance, and every fit is still judged by
has_converged.  Where Newton-CG falls short, lbfgs has all the iterations it would
have had alone, from a start no worse (Newton-CG's line search only lowers the
objective), so Newton-CG costs no C its place.  Where lbfgs converges within
LBFGS_FIRST_ITER iterations the fit is exactly lbfgs'.  On the demo the
cross-validation takes 3.0 s instead of 9.0 s, with the same chosen C; mean
held-out log-loss moves by less than 1e-4 for C <= 10^3 and by 1.5e-3 at 10^4,
where the objective is so flat that both solvers stop near, not at, its optimum
(benchmarks/probe_convergence.py).  The final fit is lbfgs alone (make_probe).

Solver: scikit-learn (scipy's L-BFGS-B, one BLAS thread) or torch
(robustpath.tasks.probe_solver.torch_logistic: the same objective by float64 L-BFGS on the run's
device, the same tolerance, warm starts and convergence check).  ``solver="auto"``
(select_solver) uses torch on a CUDA device from TORCH_FROM_ELEMENTS training values
(rows × dims) and scikit-learn otherwise, so small probes and CPU runs are unchanged;
describe()["solver"] records which ran.

Data scale: with ``samples_per_class`` > 0 the probe is trained on a seeded,
class-balanced subsample (seed, repeat, samples_per_class) of the training
split — classes with fewer images contribute all they have.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustpath.tasks.outcomes import Outcomes
from robustpath.tasks.base import CLASSIFICATION_DEFINITIONS, CLASSIFICATION_METRICS, OutcomeTask, TaskContext
from robustpath.tasks.chance import chance_record
from robustpath.tasks.registry import TaskInfo, register_task
from robustpath.util.shared_work import map_blocks

DEFAULT_C = 1.0
C_GRID = tuple(float(c) for c in np.logspace(-4, 4, 9))
CV_FOLDS = 5
CV_SCORING = "neg_log_loss"
TOLERANCE = 1e-8  # lbfgs gtol: stop when max |gradient| <= this
CONVERGED_GRADIENT = 1e-6  # see has_converged
MAX_ITER = 10_000
LBFGS_FIRST_ITER = 100  # cross-validation: lbfgs iterations before Newton-CG takes over (fit_converged)
NEWTON_CG_MAX_ITER = 100  # Newton-CG iterations before lbfgs resumes (fit_converged)
PREDICT_ROWS = 8192  # test images predicted at once
SOLVERS = ("auto", "sklearn", "torch")
TORCH_FROM_ELEMENTS = 4_000_000  # "auto": torch on a CUDA device from this many training rows × dims


def select_solver(solver: str, rows: int, dims: int, device) -> str:
    """The solver that fits the probe: "sklearn" or "torch".

    "auto" picks torch (float64 L-BFGS on the run's device) when the device is CUDA and
    the training embeddings hold at least TORCH_FROM_ELEMENTS values (rows × dims), else
    scikit-learn; on a CPU torch is no faster (benchmarks/probe_solvers.py), so "auto"
    keeps scikit-learn there and small probes stay exactly as before.
    """
    if solver not in SOLVERS:
        from robustpath.errors import UsageError, unknown_name_message

        raise UsageError(unknown_name_message("probe solver", solver, SOLVERS))
    if solver != "auto":
        return solver
    on_cuda = getattr(device, "type", str(device)).startswith("cuda")
    return "torch" if on_cuda and rows * dims >= TORCH_FROM_ELEMENTS else "sklearn"


def class_balanced_subsample(labels: np.ndarray, samples_per_class: int, seed: int, repeat: int) -> np.ndarray:
    """(N,) labels → sorted indices of up to ``samples_per_class`` images per class."""
    rng = np.random.default_rng([seed, repeat, samples_per_class])
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.permutation(members)[:samples_per_class])
    return np.sort(np.concatenate(chosen))


def make_probe(regularisation: float, seed: int, solver: str = "sklearn", device="cpu"):
    """StandardScaler → LogisticRegression(lbfgs) pipeline with inverse strength C.

    solver: "sklearn" (scipy's L-BFGS-B) or "torch" (TorchLogisticRegression on ``device``).
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), _logistic_regression(regularisation, seed, solver=solver, device=device))


def _logistic_regression(regularisation: float, seed: int, warm_start: bool = False, solver: str = "sklearn",
                         device="cpu"):
    from sklearn.linear_model import LogisticRegression

    settings = dict(C=regularisation, tol=TOLERANCE, max_iter=MAX_ITER, warm_start=warm_start, random_state=seed)
    if solver == "torch":
        from robustpath.tasks.probe_solver.torch_logistic import TorchLogisticRegression

        return TorchLogisticRegression(**settings, device=device)
    return LogisticRegression(**settings)


def max_abs_gradient(model, features: np.ndarray, labels: np.ndarray) -> float:
    """Largest |component| of the gradient of the objective a fitted LogisticRegression minimises.

    features: (N, D) float64 as the model saw them (standardised); labels: (N,).
    Objective (scikit-learn, lbfgs, L2): mean log-loss over the N rows + ||W||² / (2 C N),
    intercepts not penalised; softmax over the classes, or a sigmoid for two classes.
    """
    weights, intercepts = model.coef_, model.intercept_
    logits = features @ weights.T + intercepts  # (N, K), or (N, 1) for two classes
    if weights.shape[0] == 1:
        probability = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid without overflow
        residual = probability - (labels == model.classes_[1])[:, None]
    else:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        residual = shifted / shifted.sum(axis=1, keepdims=True) - (labels[:, None] == model.classes_[None, :])
    count = len(labels)
    gradient_weights = residual.T @ features / count + weights / (model.C * count)
    return float(max(np.abs(gradient_weights).max(), np.abs(residual.mean(axis=0)).max()))


def has_converged(model, features: np.ndarray, labels: np.ndarray) -> bool:
    """Whether the solver (lbfgs or Newton-CG) stopped before its iteration limit at a near-zero gradient.

    Converged: fewer than max_iter iterations and max |gradient| <= CONVERGED_GRADIENT
    · max(1, 1 / (C N)). lbfgs stops at max |gradient| <= TOLERANCE, or earlier when
    the objective no longer decreases in float64; under strong regularisation
    (C N < 1) that happens at gradients up to about 1e-6, but there the L2 term
    makes the objective 1 / (C N)-strongly convex, so the weights are within about
    max |gradient| · C N of the optimum. A fit that hit max_iter, or stopped (a failed
    line search) further from the optimum, has not converged.
    """
    gradient = max_abs_gradient(model, features, labels)
    return gradient_has_converged(gradient, model.C, len(labels), int(np.max(model.n_iter_)), model.max_iter)


def gradient_has_converged(gradient: float, regularisation: float, rows: int, iterations: int, max_iter: int) -> bool:
    """has_converged's rule given max |gradient| (of the objective over ``rows`` training rows at C)."""
    return iterations < max_iter and gradient <= CONVERGED_GRADIENT * max(1.0, 1.0 / (regularisation * rows))


def fit_converged(previous, features: np.ndarray, labels: np.ndarray, regularisation: float, seed: int):
    """A cross-validation fit at C = regularisation → the fitted scikit-learn LogisticRegression.

    previous: the fit at the previous C (any solver) to start from, or None to start
    from zero; features: (N, D) float64, standardised; labels: (N,). lbfgs for at most
    LBFGS_FIRST_ITER iterations; if that has not converged (has_converged), Newton-CG
    from there; if that has not either, lbfgs from Newton-CG's solution with MAX_ITER.
    Warnings of unfinished fits (iteration limits, failed line searches) are silenced:
    has_converged judges the result.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="Line Search failed")  # scikit-learn's Newton-CG
        warnings.filterwarnings("ignore", message="The line search algorithm")  # scipy's LineSearchWarning
        model = _fit_from("lbfgs", min(LBFGS_FIRST_ITER, MAX_ITER), previous, features, labels, regularisation, seed)
        for solver, max_iter in (("newton-cg", min(NEWTON_CG_MAX_ITER, MAX_ITER)), ("lbfgs", MAX_ITER)):
            if has_converged(model, features, labels):
                break
            model = _fit_from(solver, max_iter, model, features, labels, regularisation, seed)
    return model


def _fit_from(solver: str, max_iter: int, start, features, labels, regularisation: float, seed: int):
    """LogisticRegression(solver) fitted from ``start``'s coefficients (a fitted LogisticRegression, or None: zeros)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=regularisation, tol=TOLERANCE, max_iter=max_iter, solver=solver, warm_start=True,
                               random_state=seed)
    if start is not None:
        model.coef_, model.intercept_ = start.coef_.copy(), start.intercept_.copy()
    return model.fit(features, labels)


@dataclass(frozen=True)
class CrossValidation:
    """Held-out scores of every C in C_GRID, per fold: scores and converged are (folds, len(C_GRID))."""

    scores: np.ndarray  # float64 negative log-loss
    converged: np.ndarray  # bool: has_converged

    @property
    def usable(self) -> np.ndarray:
        """(len(C_GRID),) bool: every fold of that C converged."""
        return self.converged.all(axis=0)

    @property
    def mean_scores(self) -> np.ndarray:
        return self.scores.mean(axis=0)


def cross_validated_scores(features: np.ndarray, labels: np.ndarray, seed: int, folds: int, solver: str = "sklearn",
                           device="cpu") -> CrossValidation:
    """Held-out negative log-loss of each C in C_GRID in each fold, and whether each fit converged.

    Stratified, shuffled folds (seed); the scaler is fitted inside each fold; C
    grows along the grid with warm starts (each fit starts from the previous
    solution: the converged optimum is the one a fresh fit reaches, only sooner).
    solver "torch" fits the folds of a C side by side (robustpath.tasks.probe_solver.probe_folds).
    """
    from sklearn.model_selection import StratifiedKFold

    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(features, labels))
    if solver == "torch":
        from robustpath.tasks.probe_solver.probe_folds import joint_fold_scores

        return joint_fold_scores(features, labels, splits, device)
    return per_fold_scores(features, labels, splits, seed, solver, device)


def per_fold_scores(features, labels, splits, seed: int, solver: str = "sklearn", device="cpu",
                    warm_start: bool = True) -> CrossValidation:
    """cross_validated_scores one fold at a time: fold → C_GRID.

    solver "sklearn": each fit by fit_converged, warm-started from the previous C's fit;
    "torch": each fit its own L-BFGS run (TorchLogisticRegression).
    """
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    scores = np.zeros((len(splits), len(C_GRID)))
    converged = np.zeros((len(splits), len(C_GRID)), dtype=bool)
    for fold, (train, held_out) in enumerate(splits):
        scaler = StandardScaler().fit(features[train])
        train_x, held_out_x = scaler.transform(features[train]), scaler.transform(features[held_out])
        for column, model in enumerate(_fits_along_grid(train_x, labels[train], seed, solver, device, warm_start)):
            converged[fold, column] = has_converged(model, train_x, labels[train])
            probabilities = model.predict_proba(held_out_x)
            scores[fold, column] = -log_loss(labels[held_out], probabilities, labels=model.classes_)
    return CrossValidation(scores, converged)


def _fits_along_grid(features, labels, seed: int, solver: str, device, warm_start: bool):
    """One fold's fits at each C of C_GRID in turn (a generator); warm_start: each starts from the previous."""
    if solver == "torch":
        model = _logistic_regression(C_GRID[0], seed, warm_start=warm_start, solver=solver, device=device)
        for c in C_GRID:
            yield model.set_params(C=c).fit(features, labels)
        return
    model = None
    for c in C_GRID:
        model = fit_converged(model if warm_start else None, features, labels, c, seed)
        yield model


def choose_regularisation(features: np.ndarray, labels: np.ndarray, seed: int, solver: str = "sklearn",
                          device="cpu") -> tuple[float, dict]:
    """Cross-validated C from C_GRID (ties → the smaller C) → (C, facts for describe()).

    Only C whose fits converged in every fold compete; the others are listed in
    the facts ("cv_left_out"). Falls back to DEFAULT_C when a class has fewer
    than 2 training images, or when no C converged in every fold.
    """
    present = np.bincount(labels)
    smallest_class = int(present[present > 0].min()) if present.any() else 0
    folds = min(CV_FOLDS, smallest_class)
    if folds < 2 or len(np.unique(labels)) < 2:
        return DEFAULT_C, {"cv": f"skipped (a class has fewer than 2 images); C = {DEFAULT_C}"}
    validation = cross_validated_scores(features, labels, seed, folds, solver, device)
    usable, scores = validation.usable, validation.mean_scores
    facts = {
        "cv": f"{folds}-fold stratified, shuffled (seed {seed}), scoring {CV_SCORING}",
        "cv_mean_scores": {f"{c:g}": float(score) if ok else None for c, score, ok in zip(C_GRID, scores, usable)},
    }
    failures = (~validation.converged).sum(axis=0)
    left_out = {f"{c:g}": f"did not converge in {int(n)} of {folds} folds" for c, n in zip(C_GRID, failures) if n}
    if left_out:
        facts["cv_left_out"] = left_out
    if not usable.any():
        return DEFAULT_C, facts
    candidates = np.where(usable, scores, -np.inf)
    best = int(np.flatnonzero(candidates == candidates.max())[0])
    return C_GRID[best], facts


CLASSIFIERS = {
    "sklearn": "sklearn LogisticRegression (lbfgs) after StandardScaler",
    "torch": "LogisticRegression objective solved by torch L-BFGS (float64) after StandardScaler",
}

INFO = register_task(TaskInfo(
    name="linear_probe", order=10, default=True,
    description="logistic regression (C by cross-validation) on standardised clean training embeddings",
    metrics=CLASSIFICATION_METRICS, primary="accuracy", chance=chance_record,
    definitions=CLASSIFICATION_DEFINITIONS, export_columns=("predicted_label", "p_{class}"),
    run_note="The linear probe is trained on clean training embeddings and scored on corrupted test embeddings.",
    factory="robustpath.tasks.linear_probe:LinearProbeTask",
))

class LinearProbeTask(OutcomeTask):
    name = INFO.name
    description = INFO.description
    metrics = INFO.metric_names

    def __init__(self, regularisation: float | None = None, samples_per_class: int = 0, repeat: int = 0,
                 solver: str = "auto") -> None:
        """regularisation: a fixed C, or None to choose it by cross-validation; solver: one of SOLVERS."""
        super().__init__()
        select_solver(solver, 0, 0, "cpu")  # an unknown name fails here, before any work
        self.requested_solver = solver
        self.solver: str | None = None
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
        self.solver = select_solver(self.requested_solver, *features.shape, context.device)
        device = context.device if self.solver == "torch" else "cpu"
        # Single-threaded BLAS: the products are thin (N × D by D × K), threads buy little and,
        # next to torch's own threads, oversubscribe the cores (measured: 15× slower on 2 busy cores).
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.regularisation is None:
                self.chosen_regularisation, self._facts = choose_regularisation(
                    features, labels[rows], seed, self.solver, device)
            else:
                self.chosen_regularisation, self._facts = float(self.regularisation), {"cv": "not used (C fixed)"}
            self._pipeline = make_probe(self.chosen_regularisation, seed, self.solver, device)
            self._pipeline.fit(features, labels[rows])
        scaler, model = self._pipeline[0], self._pipeline[-1]
        converged = has_converged(model, scaler.transform(features), labels[rows])
        self._facts["final_fit"] = {"iterations": int(model.n_iter_[0]), "converged": bool(converged)}
        self._facts["training_images_per_class"] = {name: int(n) for name, n in zip(context.class_names, counts)}
        self._facts["solver"] = self._solver_facts(device, features.shape)

    def _solver_facts(self, device, shape: tuple[int, int]) -> dict:
        facts = {"name": self.solver, "requested": self.requested_solver, "training_values": int(shape[0] * shape[1])}
        if self.solver == "torch":
            import torch

            facts.update(device=str(device), threads=torch.get_num_threads() if str(device) == "cpu" else None,
                         algorithm="L-BFGS in torch (robustpath.tasks.probe_solver.batched_lbfgs), float64, the folds side by "
                                   "side, warm starts along C_GRID")
        else:
            facts.update(device="cpu", threads=1,
                         algorithm=f"cross-validation: L-BFGS (scipy, ≤{LBFGS_FIRST_ITER} iterations), then Newton-CG where "
                                   "it has not converged and L-BFGS again where Newton-CG has not, warm starts along "
                                   "C_GRID; final fit: scipy L-BFGS-B via scikit-learn")
        return facts

    @property
    def note(self) -> str | None:
        """One line for the run's notes when a fit did not converge, else None."""
        which = "Linear probe" + (f" ({self.samples_per_class} per class, repeat {self.repeat})" if self.samples_per_class else "")
        problems = []
        left_out = self._facts.get("cv_left_out")
        if left_out:
            problems.append(
                f"C = {', '.join(left_out)} left out of the cross-validation (a fit did not converge within "
                f"{MAX_ITER} iterations in some folds)"
            )
        if not self._facts.get("final_fit", {}).get("converged", True):
            problems.append(f"the final fit with C = {self.chosen_regularisation:g} did not converge within {MAX_ITER} iterations")
        return f"{which}: {'; '.join(problems)}; C = {self.chosen_regularisation:g} is used." if problems else None

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
        """Predictions in blocks of PREDICT_ROWS test images (bounded float64 copies for large test sets)."""
        blocks = map_blocks(  # independent blocks: an idle scoring thread may predict some
            lambda start: self._predict_block(test_embeddings[start : start + PREDICT_ROWS]),
            range(0, len(test_embeddings), PREDICT_ROWS),
        )
        predictions = [block[0] for block in blocks]
        probabilities = [block[1] for block in blocks]
        classes = len(self.context.class_names)
        return Outcomes(
            n_classes=classes,
            labels=np.asarray(self.context.test_labels, dtype=np.int64),
            predictions=np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64),
            probabilities=np.concatenate(probabilities) if probabilities else np.zeros((0, classes)),
        )

    def _predict_block(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.predict(block), dtype=np.int64), self.predict_proba(block)

    def describe(self) -> dict:
        return {
            "classifier": CLASSIFIERS.get(self.solver, CLASSIFIERS["sklearn"]),
            "C": self.chosen_regularisation,
            "C_grid": list(C_GRID) if self.regularisation is None else None,
            **self._facts,
            "tolerance": TOLERANCE,
            "converged_if": f"fewer than max_iter iterations and max |gradient| <= {CONVERGED_GRADIENT:g} · max(1, 1 / (C N))",
            "max_iter": MAX_ITER,
            "samples_per_class": self.samples_per_class or "all",
            "repeat": self.repeat,
            "trained_on": "clean training embeddings",
            "probabilities": "predict_proba (multinomial logistic regression)",
            "note": self.note,
        }
