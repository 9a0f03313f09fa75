"""The linear probe's torch solver (scikit-learn's objective, float64 L-BFGS on the run's device).

A package of its own so that the task registry, which imports every module of
robustpath.tasks, does not import scikit-learn with it: robustpath.tasks.linear_probe
imports these modules only when the torch solver runs.
"""
