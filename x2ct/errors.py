"""Exceptions of the data stage."""

from __future__ import annotations


class CaseError(ValueError):
    """A single input case cannot be used (missing or unreadable file, inconsistent geometry, empty mask, ...).

    The message names the file or case and what is wrong. The preparation pipeline catches it per case,
    records the case as failed in its manifest and carries on with the others.
    """
