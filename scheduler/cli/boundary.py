"""The command line's one error boundary: what a user can cause becomes one line on stderr.

Exit codes: 0 done; 1 no plan meets the SLO (the planner's own error says which limit); 2 bad
input of any kind (options, files, configuration, the database); 130 interrupted; 70 an error
the program did not expect (a bug: one line too, and the traceback with ``SCHEDULER_DEBUG=1``).
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from typing import Any

import typer
from typer.exceptions import TyperException

from oracle.errors import OracleError
from scheduler.errors import SchedulerError

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
DEBUG_ENV = "SCHEDULER_DEBUG"


def run(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run ``app`` on ``args`` (default: ``sys.argv``); return the exit code, having printed
    any error as one line on stderr.

    Every number option of every command takes finite values only (``--budget inf`` or
    ``--headroom nan`` are usage errors naming the option)."""
    command = typer.main.get_command(app)
    finite_numbers(command)
    try:
        code = command.main(args=args, prog_name="scheduler", standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as error:
        message, code = describe(error)
        if code == EXIT_INTERNAL and os.environ.get(DEBUG_ENV):
            traceback.print_exception(error)
        print(f"error: {message}" if message else "interrupted", file=sys.stderr, flush=True)
        return code
    return code if isinstance(code, int) else 0


def finite_numbers(command: Any) -> None:
    """Make every option and argument of ``command`` and its sub-commands refuse nan and
    infinities (a float parameter accepts them as written: ``--budget inf``)."""
    for param in getattr(command, "params", ()):
        param.process_value = _finite(param, param.process_value)
    for sub in getattr(command, "commands", {}).values():
        finite_numbers(sub)


def _finite(param: Any, process_value: Any) -> Any:
    def checked(ctx: Any, value: Any) -> Any:
        result = process_value(ctx, value)
        values = result if isinstance(result, list | tuple) else (result,)
        for number in values:
            if isinstance(number, float) and not math.isfinite(number):
                raise typer.BadParameter(f"{number} is not a finite number", ctx=ctx, param=param)
        return result

    return checked


def describe(error: BaseException) -> tuple[str, int]:
    """The one-line message and exit code of ``error`` ("" for an interruption)."""
    if isinstance(error, OracleError | SchedulerError):
        return _one_line(str(error), limit=None), int(getattr(error, "exit_code", EXIT_INPUT))
    if isinstance(error, KeyboardInterrupt | typer.Abort):
        return "", EXIT_INTERRUPTED
    if isinstance(error, TyperException):
        # Typer's (vendored click's) usage errors: a bad option value, a missing option, an
        # unknown command. They carry the context of the command they belong to.
        ctx = getattr(error, "ctx", None)
        message = _one_line(error.format_message()).rstrip(".")
        if ctx is None:
            return message, EXIT_INPUT
        path = ctx.command_path
        return f"{path}: {message}; see '{path} --help'", EXIT_INPUT
    database = _database_error(error)
    if database is not None:
        return database, EXIT_INPUT
    return _builtin_error(error)


def _is_help(error: BaseException) -> bool:
    """Typer's answer to a group called without a command: its help, as the error's message."""
    ctx = getattr(error, "ctx", None)
    return (
        isinstance(error, TyperException)
        and ctx is not None
        and ctx.command.no_args_is_help
        and error.format_message() == ctx.get_help()
    )


def _database_error(error: BaseException) -> str | None:
    # Imported here: the engine's modules are loaded already whenever one of these was raised.
    import sqlalchemy as sa

    from oracle.db import describe as describe_database_error

    if isinstance(error, sa.exc.DBAPIError):
        return describe_database_error(error)
    if isinstance(error, sa.exc.PendingRollbackError | sa.exc.ResourceClosedError):
        return (
            "the connection to the database was lost; the transaction was rolled back, nothing "
            "was written: retry when it is reachable"
        )
    if isinstance(error, sa.exc.ArgumentError | sa.exc.NoSuchModuleError):
        reason = _one_line(str(error))
        return f"the database URL is not usable ({reason}); check SCHEDULER_DATABASE_URL"
    return None


def _builtin_error(error: BaseException) -> tuple[str, int]:
    if isinstance(error, RecursionError):
        return "the input is nested too deeply to read; fix the file or value", EXIT_INPUT
    if isinstance(error, OverflowError):
        return f"a number or time is out of range ({error}); fix the value", EXIT_INPUT
    if isinstance(error, MemoryError):
        return "out of memory; give a smaller input or free memory", EXIT_INPUT
    if isinstance(error, UnicodeError):
        return f"the input is not UTF-8 text ({_one_line(str(error))}); fix the file", EXIT_INPUT
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        reason = error.strerror or _one_line(str(error)) or type(error).__name__
        return f"{where}{reason}; check the path and its permissions", EXIT_INPUT
    shown = _one_line(f"{type(error).__name__}: {error}")
    return (
        f"unexpected error ({shown}); this is a bug: rerun with {DEBUG_ENV}=1 for the traceback "
        "and report it",
        EXIT_INTERNAL,
    )


def _one_line(text: str, limit: int | None = 400) -> str:
    """``text`` on one line; cut to ``limit`` characters (None: our own messages, never cut)."""
    line = " ".join(text.split())
    return line if limit is None or len(line) <= limit else line[: limit - 3] + "..."
