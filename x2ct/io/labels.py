"""Vertebra label numbering: level names <-> ids, level-list parsing and label-scheme conversion.

The project numbering is the CTSpine1K / VerSe one: 0 background, 1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5,
25 L6 (lumbarised S1 / sixth lumbar vertebra) and 28 T13 (thirteenth thoracic vertebra). VerSe may also use
26 and 27 for structures below the lumbar spine; they have no level name here but are kept as they are.

Label schemes accepted by :func:`to_project_labels`:

* ``"ctspine1k"`` (= VerSe numbering): kept as is; ids outside 0..28 raise :class:`CaseError`.
* ``"totalsegmentator"``: TotalSegmentator numbers vertebrae C1 = 50 down to L5 = 27, so ``new = 51 - id``
  for ids 27..50. Every other id (organs, ribs, sacrum, S1, ...) becomes background 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from x2ct.errors import CaseError

BACKGROUND_LABEL: int = 0

_CERVICAL = {f"C{i}": i for i in range(1, 8)}
_THORACIC = {f"T{i}": 7 + i for i in range(1, 13)}
_LUMBAR = {f"L{i}": 19 + i for i in range(1, 6)}

#: Level name -> project label id.
LEVEL_IDS: dict[str, int] = {**_CERVICAL, **_THORACIC, **_LUMBAR, "L6": 25, "T13": 28}
#: Project label id -> level name.
LEVEL_NAMES: dict[int, str] = {label: name for name, label in LEVEL_IDS.items()}
#: Level names from head to feet; T13 lies between T12 and L1, L6 below L5.
ANATOMICAL_ORDER: tuple[str, ...] = (
    *_CERVICAL,
    *_THORACIC,
    "T13",
    *_LUMBAR,
    "L6",
)
#: Largest id of the CTSpine1K / VerSe numbering.
MAX_PROJECT_LABEL: int = 28

LABEL_SCHEMES: tuple[str, ...] = ("ctspine1k", "totalsegmentator")
#: TotalSegmentator vertebra ids: L5 = 27 ... C1 = 50; project id = offset - id.
TOTALSEG_VERTEBRA_MIN: int = 27
TOTALSEG_VERTEBRA_MAX: int = 50
TOTALSEG_OFFSET: int = 51

_RANGE_SEPARATOR = re.compile(r"\s*(?:-|–|\.\.|:)\s*")  # "L1-L5", "L1 – L5", "L1..L5", "L1:L5"


def level_id(name: str) -> int:
    """Project label id of a level name such as ``"L1"`` (case-insensitive). Raises ValueError if unknown."""
    key = name.strip().upper()
    if key not in LEVEL_IDS:
        raise ValueError(f"unknown vertebra level {name!r}; expected one of {', '.join(ANATOMICAL_ORDER)}")
    return LEVEL_IDS[key]


def level_name(label: int) -> str:
    """Level name of a project label id (e.g. 20 -> ``"L1"``). Raises ValueError if the id is no level."""
    if int(label) not in LEVEL_NAMES:
        raise ValueError(f"label id {label} is not a vertebra level; known ids: {sorted(LEVEL_NAMES)}")
    return LEVEL_NAMES[int(label)]


def _expand_token(token: str) -> list[str]:
    """One token: a level name or a range ``"A-B"`` (also ``"A..B"``/``"A:B"``) in anatomical order."""
    parts = _RANGE_SEPARATOR.split(token.strip())
    if len(parts) == 1:
        return [LEVEL_NAMES[level_id(parts[0])]]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"cannot parse level range {token!r}; write e.g. 'L1-L5'")
    first, last = (ANATOMICAL_ORDER.index(LEVEL_NAMES[level_id(p)]) for p in parts)
    if first > last:
        raise ValueError(f"level range {token!r} runs upward; write it head to feet, e.g. 'T12-L2'")
    return list(ANATOMICAL_ORDER[first : last + 1])


def parse_levels(spec: str | Iterable[str] | None) -> tuple[int, ...] | None:
    """Parse a level list into sorted unique project label ids.

    Accepts ``None`` (-> None, meaning "all levels"), a string such as ``"L1-L5"``, ``"L1,L2"`` or
    ``"T12-L2, L4"``, or a sequence of such strings (``["L1", "L2"]``). Ranges follow anatomical order, so
    ``"T12-L1"`` includes T13 and ``"L5-L6"`` includes L6. Raises ValueError on unknown names or empty lists.
    """
    if spec is None:
        return None
    tokens = [spec] if isinstance(spec, str) else [str(item) for item in spec]
    names: list[str] = []
    for text in tokens:
        compact = _RANGE_SEPARATOR.sub("-", text.strip())
        for token in re.split(r"[,;\s]+", compact):
            if token:
                names.extend(_expand_token(token))
    if not names:
        raise ValueError(f"empty vertebra level list {spec!r}")
    return tuple(sorted({LEVEL_IDS[name] for name in names}))


def level_names(labels: Sequence[int] | Iterable[int]) -> list[str]:
    """Names of the given project ids in anatomical order; ids without a level name are shown as numbers."""
    order = {LEVEL_IDS[name]: rank for rank, name in enumerate(ANATOMICAL_ORDER)}
    ids = sorted({int(v) for v in labels}, key=lambda v: (order.get(v, len(order) + v), v))
    return [LEVEL_NAMES.get(v, str(v)) for v in ids]


def to_project_labels(labels: np.ndarray, scheme: str = "ctspine1k", source: str = "mask") -> np.ndarray:
    """Convert an integer label array of ``scheme`` to the project numbering (int16, same shape).

    Args:
        labels: integer array (any shape) as read from the mask file.
        scheme: ``"ctspine1k"`` (kept as is, ids must lie in 0..28) or ``"totalsegmentator"``
            (vertebrae 27..50 -> 51 - id, every other id -> 0).
        source: file or case name used in error messages.
    Raises:
        ValueError: unknown scheme. CaseError: ids that do not belong to the scheme.
    """
    if scheme not in LABEL_SCHEMES:
        raise ValueError(f"unknown label scheme {scheme!r}; expected one of {LABEL_SCHEMES}")
    values = np.asarray(labels)
    if not np.issubdtype(values.dtype, np.integer):
        raise CaseError(f"{source}: label array must be integer, got dtype {values.dtype}")
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if scheme == "ctspine1k":
        if low < BACKGROUND_LABEL or high > MAX_PROJECT_LABEL:
            raise CaseError(
                f"{source}: label ids range {low}..{high}, outside the CTSpine1K/VerSe numbering 0..{MAX_PROJECT_LABEL}"
                " (a TotalSegmentator mask? use label_scheme='totalsegmentator')"
            )
        return values.astype(np.int16, copy=False)
    lookup_size = max(high, TOTALSEG_VERTEBRA_MAX) + 1
    if low < 0:
        raise CaseError(f"{source}: negative label id {low} in a TotalSegmentator mask")
    lookup = np.zeros(lookup_size, dtype=np.int16)
    vertebra_ids = np.arange(TOTALSEG_VERTEBRA_MIN, TOTALSEG_VERTEBRA_MAX + 1)
    lookup[vertebra_ids] = TOTALSEG_OFFSET - vertebra_ids
    return lookup[values]
