"""Checks, before any work starts, that an output folder can be used: it exists as a writable folder, or it can be
created (its nearest existing ancestor is a writable folder). Nothing is created, so a command that stops on a
bad option leaves no empty folders behind."""

from __future__ import annotations

import os
from pathlib import Path

from x2ct.errors import InvalidOptionError


def nearest_existing(path: Path) -> Path:
    """``path`` itself when it exists, else its nearest existing ancestor (absolute)."""
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_output_folder(folder: str | Path, option: str, label: str | None = None) -> Path:
    """``folder`` as a Path when it is, or can be created as, a writable folder; else InvalidOptionError naming
    the option and the folder (``label``, default ``<option>=<folder>``) and what is wrong (a file in the way, no
    write permission)."""
    path = Path(folder)
    if str(folder).strip() == "":
        raise InvalidOptionError(f"{option} is empty: give the output folder")
    label = label or f"{option}={path}"
    existing = nearest_existing(path)
    if not existing.is_dir():
        what = "is a file" if existing == path.absolute() else f"cannot be created: {existing} is a file"
        raise InvalidOptionError(f"{label} {what}; expected a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path.absolute() else f"cannot be created: {existing} is not writable"
        raise InvalidOptionError(f"{label} {what}")
    return path
