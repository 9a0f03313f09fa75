"""L-BFGS for B independent problems side by side: one objective call evaluates all of them.

Each problem b keeps its own state — iterate, 10 curvature pairs, line search, stopping
— as scipy's L-BFGS-B (which scikit-learn's lbfgs solver runs) does for one problem:
the two-loop recursion with the initial scaling s·y / y·y; a first step of 1 / ||g||;
a pair is skipped when s·y <= ε y·y; a line search for the weak Wolfe conditions
(sufficient decrease 1e-4, curvature 0.9; bisection or quadratic interpolation);
stop at max |gradient| <= tol, at a relative decrease (f_k - f_k+1) / max(|f_k|,
|f_k+1|, 1) <= ε (scikit-learn passes 64 ε; one ulp stops only where float64 makes no
more progress, so this solver ends at or past scipy's point: at large C scipy's 64 ε
can stop at gradients of 1e-7 where this goes on to tol), at max_iter iterations, or
when the line search finds no step.
Only the evaluations are shared: the caller's objective takes the B iterates together,
so a problem whose work is matrix products over shared data (the probe's folds,
robustpath.tasks.probe_solver.probe_folds) reads that data once per evaluation for all B.
A problem that has stopped keeps its iterate; the others go on.  float64, any device.
"""
from __future__ import annotations

import numpy as np

HISTORY = 10  # curvature pairs (scipy's maxcor default)
SUFFICIENT_DECREASE = 1e-4
CURVATURE = 0.9
LINE_SEARCH_STEPS = 40
FUNCTION_TOLERANCE = float(np.finfo(np.float64).eps)  # stricter than scikit-learn's 64 ε: stop only at no progress
EPSILON = float(np.finfo(np.float64).eps)


def _direction(gradient, steps, changes, inverse_curvatures):
    """Two-loop recursion per problem: (B, P) gradient, (B, m, P) pairs oldest first → (B, P) descent direction."""
    q = gradient.clone()
    alphas = []
    for i in reversed(range(steps.shape[1])):
        alpha = inverse_curvatures[:, i] * (steps[:, i] * q).sum(dim=1)
        q -= alpha[:, None] * changes[:, i]
        alphas.append(alpha)
    newest_y = changes[:, -1]
    yy = (newest_y * newest_y).sum(dim=1)
    has_pair = inverse_curvatures[:, -1] > 0
    gamma = (steps[:, -1] * newest_y).sum(dim=1) / yy.clamp_min(EPSILON)
    r = q * gamma.where(has_pair, gamma.new_ones(()))[:, None]
    for i, alpha in zip(range(steps.shape[1]), reversed(alphas)):
        beta = inverse_curvatures[:, i] * (changes[:, i] * r).sum(dim=1)
        r += steps[:, i] * (alpha - beta)[:, None]
    return -r


def _line_search(evaluate, point, value, gradient, direction, slope, step, searching):
    """Weak Wolfe steps for the problems in ``searching`` → (step, value, gradient, found), all per problem."""
    import torch

    low, high = torch.zeros_like(step), torch.full_like(step, float("inf"))
    new_value, new_gradient = value.clone(), gradient.clone()
    found = torch.zeros_like(searching)
    for _ in range(LINE_SEARCH_STEPS):
        if not searching.any():
            break
        trial_value, trial_gradient = evaluate(point + (step * searching)[:, None] * direction)
        decrease = trial_value <= value + SUFFICIENT_DECREASE * step * slope
        flat = (trial_gradient * direction).sum(dim=1) >= CURVATURE * slope
        accept = searching & decrease & flat
        new_value = trial_value.where(accept, new_value)
        new_gradient = trial_gradient.where(accept[:, None], new_gradient)
        found |= accept
        too_long, too_short = searching & ~decrease, searching & decrease & ~flat
        curvature = 2 * (trial_value - value - slope * step)
        interpolated = (-slope * step * step / curvature.clamp_min(EPSILON)).clamp(0.1 * step, 0.5 * step)
        shorter = interpolated.where(low == 0, (low + step) / 2)
        longer = (2 * step).where(torch.isinf(high), (step + high) / 2)
        high, low = step.where(too_long, high), step.where(too_short, low)
        step = shorter.where(too_long, longer.where(too_short, step))
        searching = searching & ~accept
    return step, new_value, new_gradient, found


def minimise_batched(parameters, objective, tol: float, max_iter: int) -> np.ndarray:
    """Minimise B problems from ``parameters`` (B, ...) float64, updated in place → (B,) iterations run.

    objective: (B, ...) iterates → (values (B,), gradients shaped like the iterates).
    """
    import torch

    batch, shape = parameters.shape[0], parameters.shape

    def evaluate(flat):
        values, gradients = objective(flat.view(shape))
        return values, gradients.reshape(batch, -1)

    point = parameters.detach().reshape(batch, -1).clone()
    value, gradient = evaluate(point)
    steps = point.new_zeros((batch, HISTORY, point.shape[1]))
    changes, inverse_curvatures = torch.zeros_like(steps), point.new_zeros((batch, HISTORY))
    iterations = torch.zeros(batch, dtype=torch.long, device=point.device)
    active = (gradient.abs().amax(dim=1) > tol) & (iterations < max_iter)
    while active.any():
        direction = _direction(gradient, steps, changes, inverse_curvatures)
        slope = (gradient * direction).sum(dim=1)
        first = inverse_curvatures[:, -1] == 0
        initial = (1.0 / gradient.norm(dim=1).clamp_min(EPSILON)).clamp_max(1.0).where(first, slope.new_ones(()))
        step, new_value, new_gradient, found = _line_search(
            evaluate, point, value, gradient, direction, slope, initial, active & (slope < 0))
        moved = active & found
        s, y = (step[:, None] * direction) * moved[:, None], (new_gradient - gradient) * moved[:, None]
        sy, yy = (s * y).sum(dim=1), (y * y).sum(dim=1)
        kept = moved & (sy > EPSILON * yy)
        steps = torch.roll(steps, -1, dims=1).where(kept[:, None, None], steps)
        changes = torch.roll(changes, -1, dims=1).where(kept[:, None, None], changes)
        inverse_curvatures = torch.roll(inverse_curvatures, -1, dims=1).where(kept[:, None], inverse_curvatures)
        steps[kept, -1], changes[kept, -1] = s[kept], y[kept]
        inverse_curvatures[kept, -1] = 1.0 / sy[kept]
        relative_decrease = (value - new_value) / torch.maximum(value.abs(), new_value.abs()).clamp_min(1.0)
        point += s
        value, gradient = new_value.where(moved, value), new_gradient.where(moved[:, None], gradient)
        iterations += moved
        stalled = moved & (relative_decrease <= FUNCTION_TOLERANCE)
        active = moved & ~stalled & (gradient.abs().amax(dim=1) > tol) & (iterations < max_iter)
    parameters.copy_(point.view(shape))
    return iterations.cpu().numpy()
