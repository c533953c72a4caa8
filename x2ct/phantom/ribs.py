"""Ribs of the thoracic vertebrae: from the rib head beside the body, past the transverse-process tip, then
around the inside of the torso wall, sloping toward the feet as they run forward.

Each rib is a chain of flattened elliptic tube segments (canonical mm); a rib is drawn as one bone so its
cortical shell is continuous over the joints.
"""

from __future__ import annotations

import itertools

import numpy as np

from x2ct.phantom.anatomy import LevelAnatomy
from x2ct.phantom.centreline import VertebraPose
from x2ct.phantom.shapes import EllipticTube, Shape

RIB_THICKNESS_MM: float = 6.0
RIB_HEIGHT_MM: float = 11.0
RIB_SLOPE: float = 0.35
"""Caudal drop of a rib per mm of its course along the torso wall."""
RIB_ANGLE_OFFSET_MM: float = 18.0
"""The rib angle (where it turns forward) lies this far lateral of the transverse-process tip."""
RIB_SEGMENTS: int = 8
RIB_END_ANGLE_RAD: dict[str, float] = {"T11": 0.55 * np.pi, "T12": 0.4 * np.pi}
"""Where a rib ends on the torso ellipse (angle from straight back); floating ribs are short."""
DEFAULT_RIB_END_ANGLE_RAD: float = 0.8 * np.pi


def rib_shapes(
    level: str,
    a: LevelAnatomy,
    pose: VertebraPose,
    transverse_tips: tuple[np.ndarray, np.ndarray],
    centre_hw: tuple[float, float],
    radii_hw: tuple[float, float],
    scale: float,
) -> list[list[Shape]]:
    """The right and left rib of a thoracic level, each a list of segments.

    ``centre_hw`` and ``radii_hw`` (mm) describe the ellipse (in the axial plane) the ribs follow along the
    inside of the torso wall; ``scale`` is the case's size factor.
    """
    ribs: list[list[Shape]] = []
    end_angle = RIB_END_ANGLE_RAD.get(level, DEFAULT_RIB_END_ANGLE_RAD)
    thickness, height = RIB_THICKNESS_MM * scale, RIB_HEIGHT_MM * scale
    for side, tip in zip((-1.0, 1.0), transverse_tips, strict=True):
        head = pose.to_world((-0.35 * a.body_height, 0.3 * a.body_depth, side * (a.body_width / 2 + 2.0)))
        tubercle = tip + pose.rotation[:, 1] * (a.transverse_diameter / 2)
        lateral = abs(tubercle[2] - centre_hw[1]) + RIB_ANGLE_OFFSET_MM * scale
        start_angle = float(np.arcsin(min(lateral / radii_hw[1], 1.0)))
        angles = np.linspace(start_angle, max(end_angle, start_angle), RIB_SEGMENTS)
        arc_h = centre_hw[0] + radii_hw[0] * np.cos(angles)
        arc_w = centre_hw[1] + side * radii_hw[1] * np.sin(angles)
        points = [head, tubercle]
        course = 0.0
        previous = tubercle
        for h, w in zip(arc_h, arc_w, strict=True):
            step = float(np.hypot(h - previous[1], w - previous[2]))
            course += step
            point = np.array([tubercle[0] + RIB_SLOPE * course, h, w])
            points.append(point)
            previous = point
        segments: list[Shape] = []
        for p, q in itertools.pairwise(points):
            if np.linalg.norm(q - p) < 1e-3:
                continue
            segments.append(EllipticTube(p, q, np.array([1.0, 0.0, 0.0]), thickness / 2, height / 2))
        ribs.append(segments)
    return ribs
