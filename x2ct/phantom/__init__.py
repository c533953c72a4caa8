"""Procedural spine phantoms: the project's built-in default data.

``make_phantom(seed, config)`` returns a ``Volume`` (canonical D, H, W axes; HU; CTSpine1K labels) of a
randomized thoraco-lumbar spine inside a torso, reproducible from the seed.
"""

from __future__ import annotations

from x2ct.phantom.anatomy import LEVEL_ANATOMY, LEVEL_NAMES, LevelAnatomy, level_label, level_run
from x2ct.phantom.case_id import phantom_case_id, phantom_number
from x2ct.phantom.config import PhantomConfig, TissueHU
from x2ct.phantom.spine_phantom import make_phantom

__all__ = [
    "LEVEL_ANATOMY",
    "LEVEL_NAMES",
    "LevelAnatomy",
    "PhantomConfig",
    "TissueHU",
    "level_label",
    "level_run",
    "make_phantom",
    "phantom_case_id",
    "phantom_number",
]
