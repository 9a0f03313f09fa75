"""The robustpath command line (console script ``robustpath = robustpath.cli:app``).

robustpath.cli.main builds the Typer app; robustpath.cli.report and robustpath.cli.corruptions
register their commands on it; robustpath.cli.support holds the shared plumbing.
"""
from robustpath.cli.main import app

__all__ = ["app"]
