"""robustpath: how much does a pathology model's performance fall on imperfect slide images?

Python API::

    import robustpath
    table = robustpath.evaluate("customvit-demo", "demo-ihc", corruptions=["gaussian_blur"])
    saved = robustpath.load_embeddings("runs/blur")  # a run folder written with save_embeddings=True
    embeddings, samples = saved["gaussian_blur/2/pre"]  # torch tensor (n, D) + DataFrame, same order
"""
__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load_embeddings", "train"]


def evaluate(*args, **kwargs):
    """See robustpath.api.evaluate."""
    from robustpath.api import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def train(*args, **kwargs):
    """See robustpath.api.train."""
    from robustpath.api import train as _train

    return _train(*args, **kwargs)


def load_embeddings(run_dir):
    """See robustpath.api.load_embeddings."""
    from robustpath.api import load_embeddings as _load_embeddings

    return _load_embeddings(run_dir)
