"""Batched L-BFGS against numpy's exact minimisers of independent convex problems."""
import numpy as np
import torch

from robustpath.tasks.probe_solver.batched_lbfgs import minimise_batched


def _quadratics(seed=0, batch=3, size=20):
    """B strongly convex quadratics ½ xᵀ A_b x − c_bᵀ x with condition numbers 10, 100, 1000."""
    rng = np.random.default_rng(seed)
    matrices, targets = [], []
    for b in range(batch):
        q, _ = np.linalg.qr(rng.normal(size=(size, size)))
        matrices.append(q @ np.diag(np.logspace(0, b + 1, size)) @ q.T)
        targets.append(rng.normal(size=size))
    return np.stack(matrices), np.stack(targets)


def _objective(matrices, targets):
    a, c = torch.from_numpy(matrices), torch.from_numpy(targets)

    def objective(x):
        ax = torch.einsum("bij,bj->bi", a, x)
        return 0.5 * (x * ax).sum(dim=1) - (c * x).sum(dim=1), ax - c
    return objective


def test_each_problem_reaches_its_own_exact_minimiser():
    matrices, targets = _quadratics()
    expected = np.linalg.solve(matrices, targets[..., None])[..., 0]
    x = torch.zeros(targets.shape, dtype=torch.float64)
    iterations = minimise_batched(x, _objective(matrices, targets), tol=1e-10, max_iter=1000)
    # stopped at tol or where float64 makes no more progress: within about sqrt(ε |f| / λ_min) = 1e-7 of it
    assert np.abs(x.numpy() - expected).max() <= 1e-6 * np.abs(expected).max()
    assert (iterations < 1000).all() and iterations[0] < iterations[2]  # better conditioned, fewer iterations


def test_a_problem_at_its_minimiser_stays_while_the_others_move():
    matrices, targets = _quadratics(seed=1)
    expected = np.linalg.solve(matrices, targets[..., None])[..., 0]
    start = np.zeros_like(targets)
    start[1] = expected[1]
    x = torch.from_numpy(start.copy())
    iterations = minimise_batched(x, _objective(matrices, targets), tol=1e-8, max_iter=1000)
    assert iterations[1] == 0 and np.array_equal(x.numpy()[1], expected[1])
    assert iterations[0] > 0 and iterations[2] > 0


def test_the_iteration_limit_stops_each_problem():
    matrices, targets = _quadratics(seed=2)
    x = torch.zeros(targets.shape, dtype=torch.float64)
    iterations = minimise_batched(x, _objective(matrices, targets), tol=1e-12, max_iter=4)
    assert (iterations == 4).all()
