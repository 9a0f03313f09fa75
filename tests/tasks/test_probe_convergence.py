"""The probe's cross-validation against scikit-learn's GridSearchCV with fresh, converged fits.

Reference: GridSearchCV over the same C grid, the same folds (StratifiedKFold, 5,
shuffled, seed), the same pipeline (StandardScaler fitted inside each fold, then
LogisticRegression lbfgs) and scoring neg_log_loss; each fit starts from zero and
runs to a gradient tolerance of 1e-12. Stated tolerance: mean held-out log-loss
within 0.001 of the reference for every C, and the same chosen C.
"""
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from robustpath.tasks import TaskContext, create_task
from robustpath.tasks import linear_probe
from robustpath.tasks.linear_probe import C_GRID

SCORE_TOLERANCE = 1e-3


def _blobs(seed, per_class, dimensions, spread):
    """Three Gaussian classes in few samples per dimension: separable enough that large C is hard to fit."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, size=(3, dimensions))
    x = np.concatenate([c + rng.normal(0, spread, size=(per_class, dimensions)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(3), per_class)


def _grid_search(x, y, seed=0):
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-12, max_iter=200_000))
    search = GridSearchCV(
        pipeline, {"logisticregression__C": list(C_GRID)}, scoring="neg_log_loss",
        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=seed), refit=False,
    )
    with threadpool_limits(limits=1, user_api="blas"):
        search.fit(x.astype(np.float64), y)
    return search.cv_results_["mean_test_score"]


def _fitted_probe(x, y):
    context = TaskContext(x, y, y[:3], ("a", "b", "c"), seed=0)
    task = create_task("linear_probe")
    task.fit(context)
    return task.describe()


@pytest.mark.parametrize("per_class, dimensions, spread", [(40, 30, 2.0), (40, 20, 1.5)])
def test_cross_validation_scores_and_choice_match_grid_search_with_fresh_fits(per_class, dimensions, spread):
    x, y = _blobs(3, per_class, dimensions, spread)
    reference = _grid_search(x, y)
    record = _fitted_probe(x, y)
    ours = np.array([record["cv_mean_scores"][f"{c:g}"] for c in C_GRID], dtype=float)
    assert np.abs(ours - reference).max() < SCORE_TOLERANCE, np.round(ours - reference, 4)
    assert record["C"] == C_GRID[int(np.argmax(reference))]
    assert "cv_left_out" not in record and record["note"] is None
    assert record["final_fit"]["converged"] is True


def test_a_c_that_does_not_converge_is_left_out_recorded_and_noted(monkeypatch):
    x, y = _blobs(3, 40, 20, 1.5)
    reference = _grid_search(x, y)
    monkeypatch.setattr(linear_probe, "MAX_ITER", 15)  # too few lbfgs iterations (twice) for the large C of these data
    monkeypatch.setattr(linear_probe, "NEWTON_CG_MAX_ITER", 0)  # and no Newton-CG iterations in between
    record = _fitted_probe(x, y)
    left_out = record["cv_left_out"]
    assert left_out and set(left_out) <= {f"{c:g}" for c in C_GRID}
    assert all(record["cv_mean_scores"][c] is None for c in left_out)
    kept = [i for i, c in enumerate(C_GRID) if f"{c:g}" not in left_out]
    assert record["C"] == C_GRID[kept[int(np.argmax(reference[kept]))]]  # the best among the converged C
    assert all(f"did not converge in" in reason for reason in left_out.values())
    assert record["note"].startswith("Linear probe: C = ") and ", ".join(left_out) in record["note"]
    assert json.loads(json.dumps(record))["cv_left_out"] == left_out  # as run.json records it


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_convergence_check_agrees_with_the_gradient_scikit_learn_stops_on():
    """max_abs_gradient against scipy's numerical gradient of the same objective, binary and multinomial."""
    from scipy.optimize import approx_fprime
    from scipy.special import logsumexp

    rng = np.random.default_rng(0)
    for classes in (2, 3):
        x, y = rng.normal(size=(30, 4)), np.arange(30) % classes
        model = LogisticRegression(C=0.7, max_iter=3).fit(x, y)  # stopped early: a gradient well above zero
        coef, intercept = model.coef_, model.intercept_

        def objective(flat):
            w, b = flat[: coef.size].reshape(coef.shape), flat[coef.size:]
            z = x @ w.T + b
            if classes == 2:
                log_likelihood = -np.logaddexp(0, -z[:, 0]) * y - np.logaddexp(0, z[:, 0]) * (1 - y)
            else:
                log_likelihood = z[np.arange(len(y)), y] - logsumexp(z, axis=1)
            return -log_likelihood.mean() + (w ** 2).sum() / (2 * model.C * len(y))

        numerical = approx_fprime(np.concatenate([coef.ravel(), intercept]), objective, 1e-7)
        assert linear_probe.max_abs_gradient(model, x, y) == pytest.approx(np.abs(numerical).max(), rel=1e-4)


def test_a_run_notes_and_records_a_c_left_out(monkeypatch, tmp_path, tiny_customvit_dir):
    import robustpath

    monkeypatch.setattr(linear_probe, "MAX_ITER", 3)  # no C converges in 3 lbfgs iterations
    out = tmp_path / "run"
    robustpath.evaluate(f"customvit:{tiny_customvit_dir}", "demo-ihc", corruptions=["hue"], severities=[1],
                        tasks=["linear_probe"], out=out, no_cache=True)
    record = json.loads((out / "run.json").read_text())
    probe = record["tasks"]["linear_probe"]
    assert probe["cv_left_out"] and probe["max_iter"] == 3
    assert probe["note"] in record["notes"]
    assert probe["note"] in (out / "report.md").read_text()
