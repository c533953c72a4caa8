"""One-line reports of user mistakes for the console scripts.

A Hydra task function decorated with :func:`report_user_errors` turns a :class:`~x2ct.errors.UserError` (raised
directly, or as the cause of Hydra's instantiation error) or a missing mandatory option (``???``) into
``x2ct-<command>: error: <message>`` on stderr and exit status 2. A console script's ``main()`` runs its Hydra app
through :func:`run_console_script`, which does the same for Hydra's own mistakes found before the task starts (an
unknown config option such as ``experiment=nonexistent``, a key that does not exist, an override that does not
parse). Any other exception is a bug and keeps its traceback; ``HYDRA_FULL_ERROR=1`` shows the traceback of user
errors too.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from x2ct.errors import UserError

EXIT_USER_ERROR = 2
FULL_ERROR_VARIABLE = "HYDRA_FULL_ERROR"
FULL_ERROR_ON = "1"
# Hydra's message of a missing config lists the search path after this line: not useful to a user.
SEARCH_PATH_HEADER = "Config search path:"
Result = TypeVar("Result")

# The user's own HYDRA_FULL_ERROR value while run_console_script has set it for Hydra (None: not inside one).
_user_full_error: list[str | None] = []
# Whether the task function of the innermost run_console_script has started (an OSError before it is Hydra's,
# creating its run folder).
_task_started: list[bool] = []


def user_error_in(error: BaseException | None) -> UserError | None:
    """The first :class:`UserError` in ``error``'s chain of causes (``__cause__``, then ``__context__``)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _missing_value_in(error: BaseException | None) -> MissingMandatoryValue | None:
    """The first missing mandatory config value (``???`` never given) in ``error``'s chain of causes."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, MissingMandatoryValue):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _hydra_message(error: Exception) -> str | None:
    """One line for Hydra's errors about the command line or the config names (found before the task runs)."""
    if isinstance(error, MissingConfigException):
        lines = str(error).split(SEARCH_PATH_HEADER)[0]
        message = _first_line(lines)
        group = str(error.missing_cfg_file or "").rpartition("/")[0]
        if error.options:
            message += f"; available {group + ' ' if group else ''}options: {', '.join(error.options)}"
        return message
    if isinstance(error, OverrideParseException):
        lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
        return f"cannot parse the override {error.override!r}: {'; '.join(lines)}"
    if isinstance(error, ConfigCompositionException):
        text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        cause = error.__cause__
        if isinstance(cause, OmegaConfBaseException) and _first_line(str(cause)):
            text += f" ({_first_line(str(cause))})"
        return text
    return None


def user_message(error: BaseException) -> str | None:
    """The one-line report of a user mistake in ``error`` (or its causes); None for a bug."""
    mistake = user_error_in(error)
    if mistake is not None:
        return _first_line(str(mistake)) or type(mistake).__name__
    missing = _missing_value_in(error)
    if missing is not None:
        key = missing.full_key or missing.key
        return f"missing required option {key}=... (give it on the command line)"
    if isinstance(error, Exception):
        return _hydra_message(error)
    return None


def full_error_requested() -> bool:
    """True when the user set ``HYDRA_FULL_ERROR=1``: user errors keep their traceback."""
    if _user_full_error:
        return _user_full_error[-1] == FULL_ERROR_ON
    return os.environ.get(FULL_ERROR_VARIABLE) == FULL_ERROR_ON


def _stop(command: str, message: str) -> SystemExit:
    print(f"{command}: error: {message}", file=sys.stderr)
    return SystemExit(EXIT_USER_ERROR)


@contextmanager
def _environment_variable(name: str, value: str | None) -> Iterator[None]:
    """Set (or, for None, remove) an environment variable for the duration of the block."""
    before = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def report_user_errors(command: str) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Decorator of a Hydra task function: user errors end the command with one line and exit status 2.

    Inside :func:`run_console_script` the task runs with the user's own ``HYDRA_FULL_ERROR`` (so processes it
    starts, such as DDP workers, inherit the user's setting)."""

    def decorate(task: Callable[..., Result]) -> Callable[..., Result]:
        @functools.wraps(task)
        def run(*args: object, **kwargs: object) -> Result:
            user_value = _user_full_error[-1] if _user_full_error else os.environ.get(FULL_ERROR_VARIABLE)
            if _task_started:
                _task_started[-1] = True
            try:
                with _environment_variable(FULL_ERROR_VARIABLE, user_value):
                    return task(*args, **kwargs)
            except Exception as error:
                message = user_message(error)
                if message is None or full_error_requested():
                    raise
                raise _stop(command, message) from None

        return run

    return decorate


def run_console_script(command: str, app: Callable[[], object]) -> None:
    """Run a ``hydra.main`` app as the console script ``command``: Hydra's own errors about the command line (an
    unknown config option, a key that does not exist, an override that does not parse) and user errors become one
    line ``<command>: error: ...`` on stderr and exit status 2; bugs keep their (full) traceback.

    Hydra prints its errors over several lines and exits 1 unless ``HYDRA_FULL_ERROR=1``, so the variable is set
    while Hydra runs (and put back to the user's value while the task itself runs, see :func:`report_user_errors`).
    """
    user_value = os.environ.get(FULL_ERROR_VARIABLE)
    if user_value == FULL_ERROR_ON:
        app()
        return
    _user_full_error.append(user_value)
    _task_started.append(False)
    try:
        with _environment_variable(FULL_ERROR_VARIABLE, FULL_ERROR_ON):
            app()
    except Exception as error:
        message = user_message(error)
        if message is None and isinstance(error, OSError) and error.filename is not None and not _task_started[-1]:
            message = f"cannot create Hydra's output folder {error.filename}: {error.strerror} (see hydra.run.dir)"
        if message is None:
            raise
        raise _stop(command, message) from None
    finally:
        _user_full_error.pop()
        _task_started.pop()
