"""The robustpath command line (console script ``robustpath = robustpath.cli:run``).

robustpath.cli.main builds the Typer app; robustpath.cli.report and robustpath.cli.corruptions
register their commands on it; robustpath.cli.support holds the shared plumbing.
"""
from robustpath.cli.main import app
from robustpath.cli.support import exit_process, exit_without_teardown

__all__ = ["app", "run"]


def run() -> None:
    """The process entry point: the app, then an exit that no worker thread can abort and that
    skips the interpreter's teardown of the loaded libraries (robustpath.cli.support)."""
    try:
        app(prog_name="robustpath")
    except SystemExit as exc:
        exit_process(exc.code)
        exit_without_teardown(exc.code)
        raise
