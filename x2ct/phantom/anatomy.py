"""Per-level vertebra dimensions and the level naming of the spine (CTSpine1K / VerSe label numbering).

All lengths are millimetres of an average adult. The table is given at anchor levels (values from the
morphometry literature, rounded) and linearly interpolated for the levels in between, which keeps the
gradual cranio-caudal growth of the vertebrae without a 24-row hand-written table.

Vertebra-local axes (used by every dimension below): z along the spine toward the feet, y antero-posterior
(posterior positive), x lateral (patient's left positive); the origin is the centre of the vertebral body.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

LEVEL_NAMES: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
)
"""Vertebra names cranial -> caudal; the label id of ``LEVEL_NAMES[i]`` is ``i + 1`` (C1 = 1 ... L5 = 24)."""

FIRST_LUMBAR_INDEX: int = LEVEL_NAMES.index("L1")
FIRST_THORACIC_INDEX: int = LEVEL_NAMES.index("T1")


def level_label(name: str) -> int:
    """CTSpine1K label id of a level name (``"C1"`` -> 1, ``"T1"`` -> 8, ``"L5"`` -> 24)."""
    if name not in LEVEL_NAMES:
        raise ValueError(f"unknown vertebra level {name!r}; expected one of {', '.join(LEVEL_NAMES)}")
    return LEVEL_NAMES.index(name) + 1


def level_run(first: str, last: str) -> tuple[str, ...]:
    """All level names from ``first`` to ``last`` inclusive, cranial -> caudal."""
    i, j = level_label(first) - 1, level_label(last) - 1
    if j < i:
        raise ValueError(f"level range {first!r}..{last!r} is empty: {last} is cranial to {first}")
    return LEVEL_NAMES[i : j + 1]


@dataclass(frozen=True)
class LevelAnatomy:
    """Dimensions of one vertebra (mm, degrees) in its local frame (see the module docstring)."""

    body_width: float  # lateral (x) diameter of the body
    body_depth: float  # antero-posterior (y) diameter of the body
    body_height: float  # cranio-caudal (z) height of the body
    disc_below: float  # height of the intervertebral disc below this vertebra
    canal_width: float  # lateral diameter of the vertebral canal
    canal_depth: float  # antero-posterior diameter of the vertebral canal
    pedicle_width: float  # lateral diameter of a pedicle
    pedicle_height: float  # cranio-caudal diameter of a pedicle
    pedicle_convergence_deg: float  # medial angulation of the pedicle axis toward the body
    lamina_thickness: float
    lamina_height: float
    spinous_length: float
    spinous_angle_deg: float  # caudal inclination of the spinous process (0 = straight back)
    spinous_height: float  # cranio-caudal extent of the spinous process
    spinous_thickness: float  # lateral extent of the spinous process
    transverse_span: float  # distance from the midline to a transverse process tip
    transverse_back_deg: float  # posterior inclination of the transverse processes
    transverse_diameter: float
    facet_diameter: float  # diameter of an articular process
    sagittal_bend_deg: float  # lordosis (+) / kyphosis (-) angle at the disc below this vertebra

    def scaled(self, factor: float) -> LevelAnatomy:
        """A copy with every length multiplied by ``factor`` (angles unchanged)."""
        values = {
            f.name: getattr(self, f.name) if f.name.endswith("_deg") else getattr(self, f.name) * factor
            for f in fields(self)
        }
        return LevelAnatomy(**values)


ANCHOR_ANATOMY: dict[str, LevelAnatomy] = {
    "C1": LevelAnatomy(15, 12, 10, 4, 28, 17, 7, 8, 30, 4, 9, 8, 10, 6, 4, 38, 0, 5, 6, 4),
    "C3": LevelAnatomy(15, 15, 14, 5, 24, 15, 5.5, 7, 45, 4, 10, 15, 20, 5, 3, 25, 0, 3, 4, 5),
    "C7": LevelAnatomy(20, 16, 15, 5.5, 23, 14, 6, 7.5, 35, 4, 12, 30, 25, 6, 4, 32, 0, 4, 4.5, 0),
    "T1": LevelAnatomy(26, 16, 15.5, 4.5, 17, 15, 8, 10, 25, 5, 16, 35, 35, 6, 4, 37, 25, 9, 4.5, -4),
    "T6": LevelAnatomy(30, 23, 19, 5, 15, 15, 5, 12, 10, 5, 20, 40, 60, 6, 4, 33, 35, 10, 5, -4),
    "T12": LevelAnatomy(40, 29, 23, 7, 19, 16, 8, 16, 5, 6, 22, 35, 20, 12, 6, 25, 20, 9, 5.5, 0),
    "L1": LevelAnatomy(41, 30, 25, 9, 21, 17, 8, 15, 10, 6, 24, 32, 10, 18, 7, 35, 15, 8, 6, 6),
    "L5": LevelAnatomy(49, 34, 27, 12, 24, 17, 13, 14, 25, 7, 22, 28, 5, 16, 7, 42, 15, 12, 6.5, 15),
}
"""Anatomy at anchor levels; the levels in between are interpolated (C2 from C1 and C3)."""


def _interpolate_table() -> dict[str, LevelAnatomy]:
    anchors = sorted(ANCHOR_ANATOMY, key=LEVEL_NAMES.index)
    anchor_index = np.array([LEVEL_NAMES.index(a) for a in anchors], dtype=float)
    names = [f.name for f in fields(LevelAnatomy)]
    columns = {n: np.array([getattr(ANCHOR_ANATOMY[a], n) for a in anchors], dtype=float) for n in names}
    table = {}
    for i, level in enumerate(LEVEL_NAMES):
        table[level] = LevelAnatomy(**{n: float(np.interp(i, anchor_index, columns[n])) for n in names})
    return table


LEVEL_ANATOMY: dict[str, LevelAnatomy] = _interpolate_table()
"""Dimensions of every level C1..L5 (mm, degrees)."""


def has_ribs(level: str) -> bool:
    """Thoracic vertebrae carry a pair of ribs."""
    return level.startswith("T")


def is_atlas(level: str) -> bool:
    """C1 has no vertebral body, only an anterior arch and two lateral masses."""
    return level == "C1"


def is_axis(level: str) -> bool:
    """C2 carries the dens (odontoid process) on top of its body."""
    return level == "C2"
