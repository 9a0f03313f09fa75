"""The cross-validation fits (lbfgs, then Newton-CG where lbfgs has not converged) against independent references.

Reference: GridSearchCV over C_GRID on the same folds (StratifiedKFold, 5, shuffled,
seed 0) with StandardScaler fitted inside each fold and fresh LogisticRegression fits
by Newton-Cholesky (exact Hessian, a different algorithm) run to a tolerance of 1e-12;
and the plain path robustpath ran before: lbfgs alone, warm starts along C_GRID.
Stated tolerance: mean held-out log-loss within SCORE_TOLERANCE of the reference for
every C, on data where lbfgs needs hundreds of iterations at large C (measured: 7e-6;
lbfgs stopped at 100 iterations is 0.1 off).
"""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from robustpath.tasks import linear_probe
from robustpath.tasks.linear_probe import C_GRID, LBFGS_FIRST_ITER, MAX_ITER, TOLERANCE

SCORE_TOLERANCE = 5e-5

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _correlated_classes(seed, per_class, dimensions, latent, noise, separation, classes=3):
    """Classes in a low-dimensional latent space seen through a random mixing: strongly
    correlated features (an ill-conditioned objective, like real embeddings) and nearly
    separable classes, so lbfgs needs hundreds to thousands of iterations at large C."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(0, 1, (latent, dimensions))
    centres = rng.normal(0, separation, (classes, latent))
    labels = np.repeat(np.arange(classes), per_class)
    latent_points = centres[labels] + rng.normal(0, 1, (len(labels), latent))
    return latent_points @ mixing + noise * rng.normal(0, 1, (len(labels), dimensions)), labels


def _splits(x, y):
    return list(StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(x, y))


def _newton_cholesky_grid_search(x, y):
    """Mean held-out negative log-loss per C of fresh fits run to convergence."""
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000))
    search = GridSearchCV(pipeline, {"logisticregression__C": list(C_GRID)}, scoring="neg_log_loss",
                          cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=0), refit=False)
    return search.fit(x, y).cv_results_["mean_test_score"]


def _plain_lbfgs_scores(x, y, max_iter):
    """(folds, len(C_GRID)) held-out scores and iterations of lbfgs alone, warm-started along C_GRID."""
    scores, iterations = np.zeros((5, len(C_GRID))), np.zeros((5, len(C_GRID)), dtype=int)
    for fold, (train, held_out) in enumerate(_splits(x, y)):
        scaler = StandardScaler().fit(x[train])
        model = LogisticRegression(tol=TOLERANCE, max_iter=max_iter, warm_start=True, random_state=0)
        for column, c in enumerate(C_GRID):
            model.set_params(C=c).fit(scaler.transform(x[train]), y[train])
            iterations[fold, column] = model.n_iter_[0]
            probabilities = model.predict_proba(scaler.transform(x[held_out]))
            scores[fold, column] = -log_loss(y[held_out], probabilities, labels=model.classes_)
    return scores, iterations


def test_scores_match_converged_fresh_fits_where_lbfgs_needs_hundreds_of_iterations():
    x, y = _correlated_classes(1, 60, 48, 8, 0.05, 0.8)
    with threadpool_limits(limits=1, user_api="blas"):
        reference = _newton_cholesky_grid_search(x, y)
        ours = linear_probe.per_fold_scores(x, y, _splits(x, y), seed=0)
        stopped_early, _ = _plain_lbfgs_scores(x, y, max_iter=LBFGS_FIRST_ITER)
    assert ours.usable.all()
    assert np.abs(ours.mean_scores - reference).max() <= SCORE_TOLERANCE, np.abs(ours.mean_scores - reference)
    assert int(np.argmax(ours.mean_scores)) == int(np.argmax(reference))
    # The assertion can fail: lbfgs stopped after LBFGS_FIRST_ITER iterations is far off.
    assert np.abs(stopped_early.mean(axis=0) - reference).max() > 100 * SCORE_TOLERANCE


@pytest.mark.parametrize("classes", [2, 3])
def test_where_lbfgs_converges_within_its_first_iterations_scores_equal_plain_lbfgs(classes):
    rng = np.random.default_rng(classes)
    centres = rng.normal(0, 1.0, size=(classes, 20))
    x = np.concatenate([centre + rng.normal(0, 2.0, size=(40, 20)) for centre in centres])
    y = np.repeat(np.arange(classes), 40)
    with threadpool_limits(limits=1, user_api="blas"):
        plain, iterations = _plain_lbfgs_scores(x, y, max_iter=MAX_ITER)
        ours = linear_probe.per_fold_scores(x, y, _splits(x, y), seed=0)
    assert iterations.max() < LBFGS_FIRST_ITER  # the premise: Newton-CG never runs
    assert ours.usable.all()
    np.testing.assert_array_equal(ours.scores, plain)


def _record_solvers(monkeypatch):
    """Replace linear_probe._fit_from by a spy → the list of (solver, converged) it fills."""
    calls, fit_from = [], linear_probe._fit_from

    def spy(solver, max_iter, start, features, labels, regularisation, seed):
        model = fit_from(solver, max_iter, start, features, labels, regularisation, seed)
        calls.append((solver, linear_probe.has_converged(model, features, labels)))
        return model

    monkeypatch.setattr(linear_probe, "_fit_from", spy)
    return calls


def test_a_fit_newton_cg_does_not_converge_resumes_lbfgs_and_converges(monkeypatch):
    x, y = _correlated_classes(1, 60, 48, 8, 0.05, 0.8)
    features = StandardScaler().fit_transform(x)
    monkeypatch.setattr(linear_probe, "NEWTON_CG_MAX_ITER", 1)  # Newton-CG stops at its limit: not converged
    calls = _record_solvers(monkeypatch)
    with threadpool_limits(limits=1, user_api="blas"):
        model = linear_probe.fit_converged(None, features, y, C_GRID[-1], seed=0)
        reference = LogisticRegression(C=C_GRID[-1], solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(features, y)
    assert calls == [("lbfgs", False), ("newton-cg", False), ("lbfgs", True)]
    assert model.solver == "lbfgs" and model.max_iter == MAX_ITER
    assert linear_probe.has_converged(model, features, y)
    assert np.abs(model.predict_proba(features) - reference.predict_proba(features)).max() < 1e-3


def test_c_stays_usable_when_newton_cg_falls_short_in_the_cross_validation(monkeypatch):
    x, y = _correlated_classes(2, 40, 64, 10, 0.2, 1.2)
    monkeypatch.setattr(linear_probe, "NEWTON_CG_MAX_ITER", 1)
    calls = _record_solvers(monkeypatch)
    with threadpool_limits(limits=1, user_api="blas"):
        reference = _newton_cholesky_grid_search(x, y)
        ours = linear_probe.per_fold_scores(x, y, _splits(x, y), seed=0)
    assert ("newton-cg", False) in calls and ("lbfgs", True) in calls[calls.index(("newton-cg", False)):]
    assert ours.usable.all()
    assert int(np.argmax(ours.mean_scores)) == int(np.argmax(reference))
