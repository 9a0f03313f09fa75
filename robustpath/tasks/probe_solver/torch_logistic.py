"""The linear probe's logistic regression solved by full-batch L-BFGS in torch (float64, any device).

TorchLogisticRegression is a scikit-learn LogisticRegression whose ``fit`` minimises
the same objective with torch instead of scipy: mean log-loss over the N rows +
||W||² / (2 C N), intercepts not penalised; a softmax over K >= 3 classes (K weight
rows), or a sigmoid with one weight row for two classes (scikit-learn's layout).
Everything else (predict, predict_proba, decision_function, warm_start, set_params,
the fitted attributes coef_, intercept_, classes_, n_iter_) is scikit-learn's own,
so the probe's pipeline, cross-validation and convergence check (has_converged in
robustpath.tasks.linear_probe) treat both solvers alike.

Solver: L-BFGS as scipy's L-BFGS-B runs it (robustpath.tasks.probe_solver.batched_lbfgs: 10
correction pairs, a Wolfe line search, stopping at max |gradient| <= tol (scipy's
gtol) or when the objective no longer decreases in float64, at most max_iter
iterations). torch.optim.LBFGS is not used: it drops every curvature pair with
s·y <= 1e-10 (an absolute threshold), which at large C, where gradients are small,
left it taking two to three times scipy's iterations.  The gradient is computed in
closed form (two products of the N × D features with an N × K or D × K matrix per
evaluation), in float64 on ``device``, so a result never depends on float32
rounding; thread counts and devices change only the last bits of float64 sums.  A
warm start (warm_start=True, a previous coef_ of the same shape) begins from the
previous solution, which is how the cross-validation walks up the C grid.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from robustpath.tasks.probe_solver.batched_lbfgs import minimise_batched



def logistic_objective(parameters, features, targets, inverse_strength: float, binary: bool):
    """Objective and its gradient at ``parameters`` (torch, float64, no autograd).

    parameters: (K', D + 1) weights with the intercept in the last column, K' = 1 when
    binary else K; features: (N, D); targets: (N,) float 0/1 when binary, else (N, K)
    one-hot.  Returns (objective: 0-d tensor, gradient: same shape as parameters).
    """
    import torch

    count = features.shape[0]
    weights, intercepts = parameters[:, :-1], parameters[:, -1]
    logits = features @ weights.T + intercepts  # (N, K')
    penalty = (weights * weights).sum() / (2.0 * inverse_strength * count)
    if binary:
        logit = logits[:, 0]
        loss = (torch.nn.functional.softplus(logit) - targets * logit).mean()
        residual = (torch.sigmoid(logit) - targets)[:, None]
    else:
        log_normaliser = torch.logsumexp(logits, dim=1)
        loss = (log_normaliser - (logits * targets).sum(dim=1)).mean()
        residual = torch.exp(logits - log_normaliser[:, None]) - targets
    gradient = torch.empty_like(parameters)
    gradient[:, :-1] = residual.T @ features / count + weights / (inverse_strength * count)
    gradient[:, -1] = residual.mean(dim=0)
    return loss + penalty, gradient


class TorchLogisticRegression(LogisticRegression):
    """LogisticRegression (L2, intercept) fitted by torch L-BFGS in float64 on ``device``."""

    def __init__(self, C=1.0, *, tol=1e-4, max_iter=100, warm_start=False, random_state=None, device="cpu"):
        super().__init__(C=C, tol=tol, max_iter=max_iter, warm_start=warm_start, random_state=random_state)
        self.device = device

    def fit(self, X, y, sample_weight=None):
        """X: (N, D) float; y: (N,) labels with at least two classes → self."""
        import torch

        if sample_weight is not None:
            raise ValueError("TorchLogisticRegression does not take sample weights")
        features_np = np.ascontiguousarray(X, dtype=np.float64)
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        if len(self.classes_) < 2:
            raise ValueError(f"at least two classes are needed, got {len(self.classes_)}")
        self.n_features_in_ = features_np.shape[1]
        binary = len(self.classes_) == 2
        device = torch.device(self.device)
        features = torch.from_numpy(features_np).to(device)
        encoded = np.searchsorted(self.classes_, labels)
        if binary:
            targets = torch.from_numpy(encoded.astype(np.float64)).to(device)
        else:
            targets = torch.from_numpy(np.eye(len(self.classes_))[encoded]).to(device)
        parameters = torch.from_numpy(self._initial_parameters(binary)).to(device)
        strength = float(self.C)

        def objective(batch):  # (1, K', D + 1) → ((1,), (1, K', D + 1))
            value, gradient = logistic_objective(batch[0], features, targets, strength, binary)
            return value.reshape(1), gradient[None]

        iterations = int(minimise_batched(parameters[None], objective, float(self.tol), int(self.max_iter))[0])
        solution = parameters.detach().cpu().numpy()
        self.coef_, self.intercept_ = solution[:, :-1].copy(), solution[:, -1].copy()
        self.n_iter_ = np.array([iterations], dtype=np.int32)
        return self

    def _initial_parameters(self, binary: bool) -> np.ndarray:
        """(K', D + 1) float64: zeros, or the previous solution when warm-starting one of this shape."""
        shape = (1 if binary else len(self.classes_), self.n_features_in_ + 1)
        previous = getattr(self, "coef_", None) if self.warm_start else None
        if previous is not None and previous.shape == (shape[0], shape[1] - 1):
            return np.concatenate([previous, self.intercept_[:, None]], axis=1).astype(np.float64)
        return np.zeros(shape)
