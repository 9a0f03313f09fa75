"""Running an evaluation: the runner, the dry-run plan, run configs (sweeps over models and datasets)."""
