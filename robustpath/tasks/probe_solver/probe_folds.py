"""The probe's cross-validation with the folds of a C fitted side by side in torch.

The F folds' objectives are independent (each: mean log-loss over its training rows
+ ||W_f||² / (2 C N_f), on features standardised by that fold's scaler).  Each fold
runs its own L-BFGS (robustpath.tasks.probe_solver.batched_lbfgs: own iterate, curvature pairs,
line search, stopping), but one objective call evaluates all folds, which shares the
expensive part: the features are read twice per evaluation for all folds together — logits (N × D by D × F·K) and gradients (F·K × N by N × D) —
instead of twice per fold, and the products are as thin as K, so they are limited
by memory bandwidth, not arithmetic.  Each fold's rows enter its objective through
a 0/1 mask; its standardisation is folded into its weights:
(x - μ_f) / σ_f · W_f = (x - c) · (W_f / σ_f) - (μ_f - c) · (W_f / σ_f), with c the
mean of all rows (so the correction is small and nothing cancels).

Every fold is judged on its own by has_converged's rule (its gradient, its
iterations) and scored on its held-out rows, as the one-fold-at-a-time loop does.
C grows along the grid with warm starts.  float64 throughout.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robustpath.tasks.probe_solver.batched_lbfgs import minimise_batched

if TYPE_CHECKING:
    from robustpath.tasks.linear_probe import CrossValidation


class FoldProblem:
    """F folds of one training set on ``device``: the summed objective and its gradient.

    features: (N, D) float64; labels: (N,); masks: (N, F) bool, True where a row trains fold f;
    means, scales: (F, D) each fold's StandardScaler mean_ and scale_.
    """

    def __init__(self, features, labels, masks, means, scales, device) -> None:
        import torch

        self.classes = np.unique(labels)
        self.binary = len(self.classes) == 2
        self.folds = masks.shape[1]
        centre = features.mean(axis=0)
        def to_device(array):
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64)).to(device)

        self.features = to_device(features - centre)
        self.shifts, self.scales = to_device(means - centre), to_device(scales)
        counts = masks.sum(axis=0)
        self.counts = to_device(counts)
        self.weights = to_device(masks / counts)  # (N, F): 1 / N_f on fold f's training rows
        encoded = np.searchsorted(self.classes, labels)
        self.targets = to_device(encoded[:, None] if self.binary else np.eye(len(self.classes))[encoded])  # (N, K')
        self.inverse_strength = 1.0

    def objective(self, parameters):
        """parameters: (F, K', D + 1) → (each fold's objective (F,), the gradients, shaped as parameters)."""
        import torch

        folds, outputs = parameters.shape[0], parameters.shape[1]
        weights, intercepts = parameters[..., :-1], parameters[..., -1]
        unscaled = weights / self.scales[:, None, :]  # (F, K', D)
        offsets = intercepts - (unscaled * self.shifts[:, None, :]).sum(dim=2)  # (F, K')
        logits = (self.features @ unscaled.reshape(folds * outputs, -1).T).view(-1, folds, outputs) + offsets
        if self.binary:
            logit = logits[..., 0]
            losses = torch.nn.functional.softplus(logit) - self.targets * logit  # (N, F)
            residual = (torch.sigmoid(logit) - self.targets)[..., None]
        else:
            log_normaliser = torch.logsumexp(logits, dim=2)
            losses = log_normaliser - (logits * self.targets[:, None, :]).sum(dim=2)
            residual = torch.exp(logits - log_normaliser[..., None]) - self.targets[:, None, :]
        residual = residual * self.weights[..., None]  # (N, F, K'): masked, divided by N_f
        penalty = self.inverse_strength * self.counts  # C N_f, (F,)
        values = (losses * self.weights).sum(dim=0) + (weights * weights).sum(dim=(1, 2)) / (2 * penalty)
        products = (residual.reshape(-1, folds * outputs).T @ self.features).view(folds, outputs, -1)
        residual_sums = residual.sum(dim=0)  # (F, K')
        gradient = torch.empty_like(parameters)
        gradient[..., :-1] = (products - residual_sums[..., None] * self.shifts[:, None, :]) / self.scales[:, None, :]
        gradient[..., :-1] += weights / penalty[:, None, None]
        gradient[..., -1] = residual_sums
        return values, gradient


    def probabilities(self, parameters, fold: int, rows: np.ndarray) -> np.ndarray:
        """(len(rows), K) float64 class probabilities of fold ``fold``'s model for rows of the features."""
        import torch

        weights, intercepts = parameters[fold, :, :-1], parameters[fold, :, -1]
        unscaled = weights / self.scales[fold]
        offsets = intercepts - unscaled @ self.shifts[fold]
        logits = self.features[torch.from_numpy(rows).to(self.features.device)] @ unscaled.T + offsets
        if self.binary:
            positive = torch.sigmoid(logits[:, 0])
            return torch.stack([1.0 - positive, positive], dim=1).cpu().numpy()
        return torch.softmax(logits, dim=1).cpu().numpy()

    def max_abs_gradients(self, parameters) -> np.ndarray:
        """(F,) each fold's largest |gradient component| of its own objective at ``parameters``."""
        gradient = self.objective(parameters)[1]
        return gradient.abs().flatten(1).max(dim=1).values.cpu().numpy()


def fit_folds(problem: FoldProblem, parameters, regularisation: float, tol: float, max_iter: int) -> np.ndarray:
    """Minimise each fold's objective at C from ``parameters`` (updated in place) → (F,) iterations."""
    problem.inverse_strength = float(regularisation)
    return minimise_batched(parameters, problem.objective, tol, max_iter)


def joint_fold_scores(features, labels, splits, device="cpu", warm_start: bool = True) -> CrossValidation:
    """cross_validated_scores by torch, C_GRID → all folds at once (L-BFGS side by side, warm-started)."""
    import torch
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    from robustpath.tasks.linear_probe import C_GRID, MAX_ITER, TOLERANCE, CrossValidation, gradient_has_converged

    scalers = [StandardScaler().fit(features[train]) for train, _ in splits]
    masks = np.zeros((len(labels), len(splits)), dtype=bool)
    for fold, (train, _) in enumerate(splits):
        masks[train, fold] = True
    problem = FoldProblem(features, labels, masks, np.stack([s.mean_ for s in scalers]),
                          np.stack([s.scale_ for s in scalers]), device)
    outputs = 1 if problem.binary else len(problem.classes)
    parameters = torch.zeros((len(splits), outputs, features.shape[1] + 1), dtype=torch.float64, device=device)
    scores = np.zeros((len(splits), len(C_GRID)))
    converged = np.zeros((len(splits), len(C_GRID)), dtype=bool)
    for column, c in enumerate(C_GRID):
        if not warm_start:
            parameters.zero_()
        iterations = fit_folds(problem, parameters, c, TOLERANCE, MAX_ITER)
        gradients = problem.max_abs_gradients(parameters)
        for fold, (train, held_out) in enumerate(splits):
            converged[fold, column] = gradient_has_converged(gradients[fold], c, len(train), iterations[fold], MAX_ITER)
            probabilities = problem.probabilities(parameters, fold, held_out)
            scores[fold, column] = -log_loss(labels[held_out], probabilities, labels=problem.classes)
    return CrossValidation(scores, converged)
