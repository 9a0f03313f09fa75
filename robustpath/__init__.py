"""robustpath: how much does a pathology model's performance fall on imperfect slide images?

Python API::

    import robustpath
    table = robustpath.evaluate("customvit-demo", "demo-ihc", corruptions=["gaussian_blur"])
"""
__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "train"]


def evaluate(*args, **kwargs):
    """See robustpath.api.evaluate."""
    from robustpath.api import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def train(*args, **kwargs):
    """See robustpath.api.train."""
    from robustpath.api import train as _train

    return _train(*args, **kwargs)
