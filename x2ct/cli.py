"""One-line reports of user mistakes for the console scripts.

A Hydra task function decorated with :func:`report_user_errors` turns a :class:`~x2ct.errors.UserError` (raised
directly, or as the cause of Hydra's instantiation error) into ``x2ct-<command>: error: <message>`` on stderr and
exit status 2. Any other exception is a bug and keeps its traceback; ``HYDRA_FULL_ERROR=1`` shows the traceback of
user errors too.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from x2ct.errors import UserError

EXIT_USER_ERROR = 2
FULL_ERROR_VARIABLE = "HYDRA_FULL_ERROR"
Result = TypeVar("Result")


def user_error_in(error: BaseException | None) -> UserError | None:
    """The first :class:`UserError` in ``error``'s chain of causes (``__cause__``, then ``__context__``)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def report_user_errors(command: str) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Decorator of a Hydra task function: user errors end the command with one line and exit status 2."""

    def decorate(task: Callable[..., Result]) -> Callable[..., Result]:
        @functools.wraps(task)
        def run(*args: object, **kwargs: object) -> Result:
            try:
                return task(*args, **kwargs)
            except Exception as error:
                mistake = user_error_in(error)
                if mistake is None or os.environ.get(FULL_ERROR_VARIABLE) == "1":
                    raise
                first_line = str(mistake).strip().splitlines()[0] if str(mistake).strip() else type(mistake).__name__
                print(f"{command}: error: {first_line}", file=sys.stderr)
                raise SystemExit(EXIT_USER_ERROR) from None

        return run

    return decorate
