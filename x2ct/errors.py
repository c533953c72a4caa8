"""Exceptions for mistakes a user can fix (a missing file, a bad option value, a broken input case).

Every such exception derives from :class:`UserError`; the console scripts report it as one line
(``x2ct-<command>: error: <message>``, see :mod:`x2ct.cli`) instead of a traceback. They also derive from the
built-in type a caller would expect (ValueError, FileNotFoundError), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input or options; the message names the file or option and what is wrong."""


class InvalidOptionError(UserError, ValueError):
    """An option value that cannot be used (out of range, wrong type, inconsistent with another option)."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A file or folder the user pointed to does not exist."""


class CaseError(UserError, ValueError):
    """A single input case cannot be used (missing or unreadable file, inconsistent geometry, empty mask, ...).

    The message names the file or case and what is wrong. The preparation pipeline catches it per case,
    records the case as failed in its manifest and carries on with the others.
    """
