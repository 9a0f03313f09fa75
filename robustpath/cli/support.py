"""Command-line plumbing shared by every command: errors, consoles, progress bars."""
from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from robustpath.errors import RobustPathError, unknown_name_message
from robustpath.spec.run_spec import DEFAULT_PRESET

# Options shared by several commands (one declaration, one help text).
DebugOption = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for errors.")]
PresetOption = Annotated[
    Optional[list[str]],
    typer.Option("--preset", envvar="ROBUSTPATH_PRESET", help="Corruption preset: a built-in name (pathology, small-patch, "
                 "slide-artefacts, imagenet-c, imagecorruptions) or a TOML file; repeat it to run several presets in one "
                 "sweep (default: pathology)."),
]


def preset_names(values: Optional[Sequence[str]]) -> "str | tuple[str, ...]":
    """The --preset values as RunSpec.preset takes them: the default preset when none, one name, or a tuple of names."""
    values = tuple(values or ())
    if not values:
        return DEFAULT_PRESET
    return values[0] if len(values) == 1 else values
CorruptionOption = Annotated[
    Optional[list[str]], typer.Option("--corruption", "-c", help="Corruption to apply (repeatable); default: all in the preset.")
]
SeverityOption = Annotated[
    Optional[list[int]], typer.Option("--severity", "-s", help="Severity level (repeatable); default: all.")
]

DEBUG_ENV = "ROBUSTPATH_DEBUG"


def parse_output_folder(value) -> "Path":
    """An --out value as a Path; an empty or blank one (which would mean the current folder) is refused."""
    if not str(value).strip():
        raise typer.BadParameter("empty; give a folder name (an unset shell variable?)")
    return Path(value)


def choice_option(*names: str, values: Sequence[str], kind: str, help: str, plural: str | None = None, **extra):
    """A typer.Option whose value (or each value of a list option) must be one of ``values``.

    A wrong value stops with the one wording of robustpath.errors.unknown_name_message
    ("unknown stage 'middle'. Valid stages: default, pre, post, both"), matched without
    regard to case for the suggestion; the help shows the choices as ``a|b|c``.
    """

    def check(ctx: typer.Context, value):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and item not in values:
                raise _click_exceptions().UsageError(unknown_name_message(kind, item, values, plural=plural), ctx=ctx)
        return value

    return typer.Option(*names, metavar="|".join(values), callback=check, help=help, **extra)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


PIPE_WIDTH = 120


def stdout_console():
    """Results console; when stdout is a file or pipe, lines are up to 120 characters."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def _click_exceptions():
    """Click's exception classes: typer ≥ 0.20 vendors click as typer._click."""
    try:
        from typer._click import exceptions
    except ImportError:  # older typer on the real click
        from click import exceptions
    return exceptions


class PlainUsageCommand(TyperCommand):
    """A command whose usage line names its arguments as users type them: ``IMAGE_OR_DATA`` when
    required, ``[MODEL]`` when optional, ``RUN_DIR...`` when repeatable (typer writes {IMAGE_OR_DATA})."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            name = (param.metavar or param.name.upper()).removesuffix("...")
            name += "..." if param.nargs != 1 else ""
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class OneLineErrorGroup(TyperGroup):
    """Usage errors (bad option values, unknown options) as one ``error:`` line, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        click = _click_exceptions()
        try:
            result = super().main(
                args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )
        except click.NoArgsIsHelpError as exc:  # `robustpath` alone: show the help
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except click.ClickException as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
            typer.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


WORKER_THREAD_PREFIX = "robustpath-"


def exit_process(code) -> None:
    """End the process with ``code`` at once if a robustpath worker thread is still running.

    After an interrupt, a worker (preparation, scoring) may still be inside native
    code; letting the interpreter shut down around it can abort the process
    (SIGABRT) instead of exiting with ``code``.  Outputs need no finalisation here:
    every file is written atomically and the sweep's store survives a kill.
    Otherwise returns, and the normal exit follows.
    """
    import threading

    busy = [t for t in threading.enumerate() if t.name.startswith(WORKER_THREAD_PREFIX) and t.is_alive()]
    if not busy:
        return
    _exit_now(code)


def exit_without_teardown(code) -> None:
    """End the process with ``code`` without the interpreter's teardown of every module.

    Tearing down torch, scikit-learn, scipy and pandas module by module costs most of a
    second of CPU at the end of every run, and frees nothing the operating system would
    not.  What a normal exit does that matters still happens: the atexit handlers run
    (logging, temporary folders, weakref finalizers) and stdout and stderr are flushed;
    every output file is already closed (written atomically).  Returns, for the normal
    exit, while another non-daemon thread runs (a normal exit waits for it).
    """
    import atexit
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if others:
        return
    atexit._run_exitfuncs()
    _exit_now(code)


def _exit_now(code) -> None:
    """os._exit with the status sys.exit(code) gives: a message is printed and exits 1; 120 when
    stdout or stderr cannot be flushed (as Python's own exit does)."""
    status = code if isinstance(code, int) else (0 if code is None else 1)
    if code is not None and not isinstance(code, int):  # sys.exit("message") prints it
        print(code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            status = status or 120
    os._exit(status)


def fail(message: str, code: int) -> None:
    """Print ``error: message`` on one line to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(command: Callable) -> Callable:
    """Map user errors to one line + exit code; tracebacks only with --debug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug", False) or os.environ.get(DEBUG_ENV) == "1"
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except RobustPathError as exc:
            if debug:
                raise
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:  # bugs and unmapped library errors: one line unless --debug
            from robustpath.output.run_folder import interrupted_by_user

            if interrupted_by_user(exc):  # e.g. a module interrupted while it was imported
                typer.echo("interrupted", err=True)
                raise typer.Exit(130) from None
            if debug:
                raise
            if _is_corruption_error(exc):
                fail(str(exc), 2)
            fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)

    return wrapper


def _is_corruption_error(exc: Exception) -> bool:
    module = sys.modules.get("corruptions")
    return module is not None and isinstance(exc, module.CorruptionError)


class RichProgress:
    """ProgressReporter drawing rich progress bars on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=stderr_console(), disable=not enabled, transient=False,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._progress.stop()

    def start(self, key: str, description: str, total: int) -> None:
        self._tasks[key] = self._progress.add_task(description, total=total)

    def advance(self, key: str, amount: int = 1) -> None:
        self._progress.advance(self._tasks[key], amount)

    def describe(self, key: str, description: str) -> None:
        """New text for bar ``key`` (training loops show their running loss here)."""
        self._progress.update(self._tasks[key], description=description)

    def notice(self, message: str) -> None:
        """Print ``message`` on stderr now, above the bars (also with --quiet, which only hides the bars)."""
        self._progress.console.print(f"note: {message}", highlight=False)

    def finish(self, key: str) -> None:
        task = self._tasks[key]
        self._progress.update(task, completed=self._progress.tasks[task].total)
