"""The torch L-BFGS probe solver against scikit-learn's LogisticRegression (lbfgs, tol 1e-8).

Stated tolerance: on standardised synthetic features, probabilities within 1e-6 of
scikit-learn's at the same C and tolerance, and identical predictions except where
scikit-learn's two most probable classes lie within 1e-6 (a near-tie, none here);
coefficients within 1e-4 relative to their largest magnitude. The cross-validated C
matches GridSearchCV's (scikit-learn, fresh fits converged to 1e-12, same folds), with
mean held-out log-loss within 1e-3 per C.
"""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from robustpath.errors import UsageError
from robustpath.tasks import TaskContext, create_task
from robustpath.tasks import linear_probe
from robustpath.tasks.linear_probe import C_GRID, TOLERANCE, select_solver
from robustpath.tasks.probe_solver.probe_folds import joint_fold_scores
from robustpath.tasks.probe_solver.torch_logistic import TorchLogisticRegression

PROBABILITY_TOLERANCE = 1e-6
COEFFICIENT_TOLERANCE = 1e-4


def _standardised_blobs(classes, per_class=60, dimensions=12, spread=2.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, size=(classes, dimensions))
    x = np.concatenate([c + rng.normal(0, spread, size=(per_class, dimensions)) for c in centres])
    return StandardScaler().fit_transform(x), np.repeat(np.arange(classes), per_class)


def _by_hand_max_gradient(model, x, y):
    """max |gradient| of mean log-loss + ||W||² / (2 C N), by numpy from the softmax / sigmoid formulas."""
    n = len(y)
    if model.coef_.shape[0] == 1:
        z = x @ model.coef_[0] + model.intercept_[0]
        r = (1 / (1 + np.exp(-z)) - (y == model.classes_[1]))[:, None]
    else:
        z = x @ model.coef_.T + model.intercept_
        p = np.exp(z - z.max(1, keepdims=True))
        r = p / p.sum(1, keepdims=True) - np.eye(len(model.classes_))[np.searchsorted(model.classes_, y)]
    return max(np.abs(r.T @ x / n + model.coef_ / (model.C * n)).max(), np.abs(r.mean(0)).max())


def _assert_same_fit(torch_model, reference, x):
    scale = np.abs(reference.coef_).max()
    assert np.abs(torch_model.coef_ - reference.coef_).max() <= COEFFICIENT_TOLERANCE * scale
    expected = reference.predict_proba(x)
    assert np.abs(torch_model.predict_proba(x) - expected).max() <= PROBABILITY_TOLERANCE
    top_two = np.sort(expected, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > PROBABILITY_TOLERANCE
    assert np.array_equal(torch_model.predict(x)[clear], reference.predict(x)[clear])
    assert clear.all()  # no near-ties in these data: every prediction is compared


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("c", [1e-3, 1.0, 100.0])
def test_torch_solver_matches_sklearn(classes, c):
    x, y = _standardised_blobs(classes)
    reference = LogisticRegression(C=c, tol=TOLERANCE, max_iter=10_000).fit(x, y)
    model = TorchLogisticRegression(C=c, tol=TOLERANCE, max_iter=10_000).fit(x, y)
    assert model.coef_.shape == reference.coef_.shape and model.intercept_.shape == reference.intercept_.shape
    assert _by_hand_max_gradient(model, x, y) <= 1e-6
    _assert_same_fit(model, reference, x)


def test_warm_start_begins_at_the_previous_solution_and_reaches_the_cold_optimum():
    x, y = _standardised_blobs(3)
    cold = TorchLogisticRegression(C=10.0, tol=TOLERANCE, max_iter=10_000).fit(x, y)
    warm = TorchLogisticRegression(C=0.1, tol=TOLERANCE, max_iter=10_000, warm_start=True).fit(x, y)
    warm.set_params(C=10.0).fit(x, y)
    assert np.abs(warm.predict_proba(x) - cold.predict_proba(x)).max() <= PROBABILITY_TOLERANCE
    solution = warm.coef_.copy()
    warm.fit(x, y)  # starts at its own optimum: at most one step (where the objective had stopped changing)
    assert warm.n_iter_[0] <= 1
    assert np.abs(warm.coef_ - solution).max() <= COEFFICIENT_TOLERANCE * np.abs(solution).max()


def test_a_fit_stopped_by_its_iteration_limit_is_not_converged(monkeypatch):
    x, y = _standardised_blobs(3)
    model = TorchLogisticRegression(C=1.0, tol=TOLERANCE, max_iter=3).fit(x, y)
    assert model.n_iter_[0] == 3 and _by_hand_max_gradient(model, x, y) > 1e-3
    assert not linear_probe.has_converged(model, x, y)
    monkeypatch.setattr(linear_probe, "MAX_ITER", 3)
    chosen, facts = linear_probe.choose_regularisation(x, y, seed=0, solver="torch")
    assert chosen == linear_probe.DEFAULT_C
    assert set(facts["cv_left_out"]) == {f"{c:g}" for c in C_GRID}


def test_results_do_not_depend_on_the_thread_count():
    x, y = _standardised_blobs(3, per_class=100, dimensions=32)
    threads = torch.get_num_threads()
    fits = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            fits.append(TorchLogisticRegression(C=1.0, tol=TOLERANCE, max_iter=10_000).fit(x, y))
    finally:
        torch.set_num_threads(threads)
    assert np.abs(fits[0].predict_proba(x) - fits[1].predict_proba(x)).max() <= 1e-12
    assert np.array_equal(fits[0].predict(x), fits[1].predict(x))


def test_cross_validated_c_matches_grid_search():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1.0, size=(3, 30))
    x = np.concatenate([c + rng.normal(0, 3.0, size=(20, 30)) for c in centres])
    y = np.repeat(np.arange(3), 20)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(tol=1e-12, max_iter=200_000)),
        {"logisticregression__C": list(C_GRID)}, scoring="neg_log_loss",
        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=0), refit=False,
    )
    with threadpool_limits(limits=1, user_api="blas"):
        search.fit(x, y)
    expected = search.cv_results_["mean_test_score"]
    validation = linear_probe.cross_validated_scores(x, y, seed=0, folds=5, solver="torch")
    assert validation.usable.all()
    assert validation.mean_scores == pytest.approx(expected, abs=1e-3)
    chosen, _ = linear_probe.choose_regularisation(x, y, seed=0, solver="torch")
    assert chosen == search.cv_results_["param_logisticregression__C"][int(np.argmax(expected))] != 1.0


def test_probe_task_with_the_torch_solver_records_it_and_agrees_with_sklearn():
    x, y = _standardised_blobs(3, seed=2)
    test_x, test_y = _standardised_blobs(3, per_class=20, seed=3)
    context = TaskContext(x.astype(np.float32), y, test_y, ("a", "b", "c"), seed=0)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, tol=1e-12, max_iter=100_000))
    reference.fit(x.astype(np.float32).astype(np.float64), y)
    task = create_task("linear_probe", regularisation=1.0, solver="torch")
    task.fit(context)
    facts = task.describe()
    assert facts["solver"]["name"] == "torch" and facts["solver"]["requested"] == "torch"
    assert "torch L-BFGS" in facts["classifier"] and facts["final_fit"]["converged"]
    expected = reference.predict_proba(test_x)
    assert np.abs(task.predict_proba(test_x.astype(np.float32)) - expected).max() <= PROBABILITY_TOLERANCE
    assert np.array_equal(task.outcomes(test_x.astype(np.float32)).predictions, reference.predict(test_x))


def test_auto_keeps_sklearn_on_a_cpu_and_for_small_probes():
    assert select_solver("auto", 50_000, 1024, "cpu") == "sklearn"
    assert select_solver("auto", 280, 128, "cuda") == "sklearn"
    assert select_solver("auto", 50_000, 1024, torch.device("cuda", 0)) == "torch"
    assert select_solver("sklearn", 50_000, 1024, "cuda") == "sklearn"
    assert select_solver("torch", 10, 2, "cpu") == "torch"
    with pytest.raises(UsageError, match="unknown probe solver 'torhc'. Did you mean 'torch'"):
        create_task("linear_probe", solver="torhc")
    task = create_task("linear_probe", regularisation=1.0)
    x, y = _standardised_blobs(3)
    task.fit(TaskContext(x.astype(np.float32), y, y, ("a", "b", "c"), seed=0))
    assert task.describe()["solver"]["name"] == "sklearn"
    assert task.describe()["classifier"] == "sklearn LogisticRegression (lbfgs) after StandardScaler"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_solver_on_cuda_matches_sklearn():
    x, y = _standardised_blobs(3)
    reference = LogisticRegression(C=1.0, tol=TOLERANCE, max_iter=10_000).fit(x, y)
    _assert_same_fit(TorchLogisticRegression(C=1.0, tol=TOLERANCE, max_iter=10_000, device="cuda").fit(x, y),
                     reference, x)


def _fold_problem(classes, rng):
    from robustpath.tasks.probe_solver.probe_folds import FoldProblem

    centres = rng.normal(0, 1.0, size=(classes, 6)) + 4.0  # uncentred, as embeddings are
    x = np.concatenate([c + rng.normal(0, 2.0, size=(15, 6)) for c in centres])
    y = np.repeat(np.arange(classes), 15) + 1  # labels need not start at 0
    splits = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(x, y))
    scalers = [StandardScaler().fit(x[train]) for train, _ in splits]
    masks = np.zeros((len(y), 3), dtype=bool)
    for fold, (train, _) in enumerate(splits):
        masks[train, fold] = True
    problem = FoldProblem(x, y, masks, np.stack([s.mean_ for s in scalers]), np.stack([s.scale_ for s in scalers]), "cpu")
    return problem, x, y, splits, scalers


@pytest.mark.parametrize("classes", [2, 4])
def test_joint_fold_objective_is_each_folds_own(classes):
    """Value, per-fold gradients and held-out probabilities against numpy on each fold's standardised rows."""
    from scipy.special import expit, log_expit, log_softmax, softmax

    rng = np.random.default_rng(classes)
    problem, x, y, splits, scalers = _fold_problem(classes, rng)
    problem.inverse_strength = 0.3
    outputs = 1 if classes == 2 else classes
    parameters = torch.from_numpy(rng.normal(0, 0.5, size=(3, outputs, 7)))
    values, _ = problem.objective(parameters)
    expected_values, expected_gradients = [], []
    for fold, (train, held_out) in enumerate(splits):
        model = LogisticRegression(C=0.3)
        model.classes_, model.coef_ = np.unique(y), parameters[fold, :, :-1].numpy()
        model.intercept_ = parameters[fold, :, -1].numpy()
        z = scalers[fold].transform(x[train]) @ model.coef_.T + model.intercept_
        target = (y[train] == model.classes_[1])[:, None] if classes == 2 else np.eye(classes)[y[train] - 1]
        losses = -(target * log_expit(z) + (1 - target) * log_expit(-z)) if classes == 2 else -(target * log_softmax(z, 1))
        expected_values.append(losses.sum(1).mean() + (model.coef_ ** 2).sum() / (2 * 0.3 * len(train)))
        expected_gradients.append(_by_hand_max_gradient(model, scalers[fold].transform(x[train]), y[train]))
        held = scalers[fold].transform(x[held_out]) @ model.coef_.T + model.intercept_
        reference = np.hstack([expit(-held), expit(held)]) if classes == 2 else softmax(held, 1)
        assert np.abs(problem.probabilities(parameters, fold, held_out) - reference).max() <= 1e-12
    assert values.numpy() == pytest.approx(expected_values, rel=1e-12)
    assert problem.max_abs_gradients(parameters) == pytest.approx(expected_gradients, rel=1e-10)


@pytest.mark.parametrize("classes", [2, 3])
def test_joint_fold_scores_match_sklearn_one_fold_at_a_time(classes):
    """Within 1e-5 where C <= 1 (well conditioned), 1e-3 at larger C (a flat objective: both stop near, not at, it)."""
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1.0, size=(classes, 30)) + 5.0
    x = np.concatenate([c + rng.normal(0, 3.0, size=(20, 30)) for c in centres])
    y = np.repeat(np.arange(classes), 20)
    splits = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(x, y))
    joint = joint_fold_scores(x, y, splits)
    reference = linear_probe.per_fold_scores(x, y, splits, seed=0, solver="sklearn")
    assert joint.converged.all() and reference.converged.all()
    difference = np.abs(joint.scores - reference.scores).max(axis=0)
    small_c = np.asarray(C_GRID) <= 1.0
    assert (difference[small_c] <= 1e-5).all() and (difference <= 1e-3).all()
