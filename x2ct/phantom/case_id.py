"""The one name format of phantom cases: ``phantom_0000``, ``phantom_0001``, ... (the folder names of every
prepared phantom dataset)."""

from __future__ import annotations

import re

PHANTOM_ID_PREFIX = "phantom_"
PHANTOM_ID_DIGITS = 4  # zero-padded width; larger numbers simply use more digits
_PHANTOM_ID = re.compile(rf"^{PHANTOM_ID_PREFIX}(\d+)$")


def phantom_case_id(number: int) -> str:
    """The case id of phantom ``number`` (>= 0): 7 -> ``"phantom_0007"``."""
    if isinstance(number, bool) or int(number) != number or number < 0:
        raise ValueError(f"a phantom number must be a non-negative integer, got {number!r}")
    return f"{PHANTOM_ID_PREFIX}{int(number):0{PHANTOM_ID_DIGITS}d}"


def phantom_number(case_id: str) -> int:
    """Inverse of :func:`phantom_case_id`; any zero padding is accepted (``"phantom_00003"`` -> 3).

    Raises ValueError naming the id when it is not ``phantom_<digits>``."""
    match = _PHANTOM_ID.match(case_id)
    if match is None:
        raise ValueError(f"{case_id!r} is not a phantom case id (expected {phantom_case_id(0)!r}, ...)")
    return int(match.group(1))
