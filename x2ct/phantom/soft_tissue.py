"""Soft tissue around the spine: torso outline (subcutaneous fat over soft tissue), intervertebral discs,
the canal contents, paraspinal (erector spinae) and psoas muscles with their fat planes, and bowel gas.

All shapes are in canonical millimetres (D toward the feet, H toward the back, W toward the patient's left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from x2ct.phantom.anatomy import LevelAnatomy
from x2ct.phantom.canvas import VoxelGrid, occupancy
from x2ct.phantom.centreline import VertebraPose
from x2ct.phantom.shapes import Ellipsoid, EllipticColumn, EllipticTube, Intersection, Shape
from x2ct.phantom.vertebra import ENDPLATE_CONCAVITY_FRACTION, POSTERIOR_FLATTENING, posterior_reach_mm

DISC_BODY_OVERLAP_MM: float = 2.0
"""How far a disc reaches into the neighbouring bodies beyond their end-plate concavity (they overwrite it)."""
PSOAS_RADIUS_MM: dict[str, float] = {"T12": 5.0, "L1": 9.0, "L2": 12.0, "L3": 15.0, "L4": 18.0, "L5": 20.0}
"""Lateral radius of each psoas muscle beside a level (absent above T12)."""
PSOAS_ASPECT: float = 0.8
"""Antero-posterior / lateral radius ratio of the psoas."""
FAT_PLANE_MM: float = 3.0
"""Thickness of the fat plane around the psoas that makes its outline visible on radiographs."""
ERECTOR_WIDTH_FRACTION: float = 0.45
"""Lateral radius of an erector spinae muscle as a fraction of the transverse-process span."""
RIB_INSET_EXTRA_MM: float = 12.0
"""Ribs run this far inside the inner (sub-fat) surface of the torso."""
MUSCLE_JOINT_OVERLAP_MM: float = 1.0
"""Muscles are drawn level by level as flat-ended pieces that overlap their neighbours by this much."""


def _level_half_length(a: LevelAnatomy) -> float:
    """Half the cranio-caudal extent of the muscle piece of one level (body + disc, slightly overlapping)."""
    return (a.body_height + a.disc_below) / 2 + MUSCLE_JOINT_OVERLAP_MM


@dataclass(frozen=True)
class Torso:
    """Elliptic torso cross-section (mm): centre, outer semi-axes and subcutaneous fat thickness."""

    centre_h: float
    centre_w: float
    radius_h: float
    radius_w: float
    fat_mm: float

    @property
    def outer(self) -> EllipticColumn:
        return EllipticColumn(self.centre_h, self.centre_w, self.radius_h, self.radius_w)

    @property
    def inner(self) -> EllipticColumn:
        return EllipticColumn(self.centre_h, self.centre_w, self.radius_h - self.fat_mm, self.radius_w - self.fat_mm)

    def cross_section_hu(
        self, grid: VoxelGrid, air_hu: float, fat_hu: float, soft_hu: float, edge_mm: float
    ) -> np.ndarray:
        """HU image (H, W) of one axial slice: air outside, fat ring, soft tissue inside."""
        region = (slice(0, 1), slice(0, grid.shape[1]), slice(0, grid.shape[2]))
        coords = grid.coords(region)
        image = np.full(grid.shape[1:], air_hu, dtype=np.float32)
        for shape, value in ((self.outer, fat_hu), (self.inner, soft_hu)):
            occ = occupancy(shape.sdf(*coords)[0], edge_mm)
            image += occ * (np.float32(value) - image)
        return image


def disc_shapes(anatomy: list[LevelAnatomy], poses: list[VertebraPose], disc_above_mm: float) -> list[Shape]:
    """Intervertebral discs between consecutive bodies plus half discs above the first and below the last.

    A disc is a flat elliptic cylinder from end plate to end plate that also fills the end-plate
    concavities; it reaches a little into both bodies (which are drawn over it) so no gap opens where the
    vertebrae are tilted against each other.
    """
    discs: list[Shape] = []
    for (a, pa), (b, pb) in zip(
        zip(anatomy[:-1], poses[:-1], strict=True), zip(anatomy[1:], poses[1:], strict=True), strict=True
    ):
        tilt = np.arccos(np.clip(float(pa.axis @ pb.axis), -1.0, 1.0))
        radius = max(a.body_width, b.body_width) / 2
        overlap = DISC_BODY_OVERLAP_MM + radius * np.tan(tilt / 2)
        top = pa.centre_mm + pa.axis * (a.body_height / 2 - ENDPLATE_CONCAVITY_FRACTION * a.body_height - overlap)
        bottom = pb.centre_mm - pb.axis * (b.body_height / 2 - ENDPLATE_CONCAVITY_FRACTION * b.body_height - overlap)
        discs.append(
            _disc(
                top,
                bottom,
                (pa.rotation + pb.rotation) / 2,
                (a.body_width + b.body_width) / 2,
                (a.body_depth + b.body_depth) / 2,
            )
        )
    first_a, first = anatomy[0], poses[0]
    inner = first_a.body_height / 2 - ENDPLATE_CONCAVITY_FRACTION * first_a.body_height - DISC_BODY_OVERLAP_MM
    discs.append(
        _disc(
            first.centre_mm - first.axis * (first_a.body_height / 2 + disc_above_mm / 2),
            first.centre_mm - first.axis * inner,
            first.rotation,
            first_a.body_width,
            first_a.body_depth,
        )
    )
    last_a, last = anatomy[-1], poses[-1]
    inner = last_a.body_height / 2 - ENDPLATE_CONCAVITY_FRACTION * last_a.body_height - DISC_BODY_OVERLAP_MM
    discs.append(
        _disc(
            last.centre_mm + last.axis * inner,
            last.centre_mm + last.axis * (last_a.body_height / 2 + last_a.disc_below / 2),
            last.rotation,
            last_a.body_width,
            last_a.body_depth,
        )
    )
    return discs


def _disc(top: np.ndarray, bottom: np.ndarray, rotation: np.ndarray, width: float, depth: float) -> Shape:
    # the body's flattened back: shift the ellipse forward so the disc ends at the posterior wall
    shift = -rotation[:, 1] * depth * POSTERIOR_FLATTENING / 2
    return EllipticTube(
        top + shift, bottom + shift, rotation[:, 1], width / 2, depth * (1 - POSTERIOR_FLATTENING) / 2, ends="flat"
    )


def erector_spinae(a: LevelAnatomy, pose: VertebraPose, torso: Torso) -> list[Shape]:
    """The two paraspinal muscle masses beside the spinous process of one level, clipped to the torso."""
    wall_y = a.body_depth * (0.5 - POSTERIOR_FLATTENING)
    front_y = wall_y + a.canal_depth * 0.5
    back_y = posterior_reach_mm(a) + 4.0
    radius_x = ERECTOR_WIDTH_FRACTION * a.transverse_span
    radius_y = (back_y - front_y) / 2
    centre_y = (back_y + front_y) / 2
    half = _level_half_length(a)
    shapes: list[Shape] = []
    for side in (-1.0, 1.0):
        x = side * (a.spinous_thickness / 2 + radius_x * 0.9)
        tube = EllipticTube(
            pose.to_world((-half, centre_y, x)),
            pose.to_world((half, centre_y, x)),
            pose.rotation[:, 1],
            radius_x,
            radius_y,
            ends="flat",
        )
        shapes.append(Intersection((tube, torso.inner)))
    return shapes


def psoas(a: LevelAnatomy, pose: VertebraPose, level: str, extra_mm: float = 0.0) -> list[Shape]:
    """The two psoas muscles beside a lumbar body (empty above T12); ``extra_mm`` enlarges them (fat plane)."""
    if level not in PSOAS_RADIUS_MM:
        return []
    radius = PSOAS_RADIUS_MM[level] * a.body_width / 45.0 + extra_mm
    half = _level_half_length(a)
    shapes: list[Shape] = []
    for side in (-1.0, 1.0):
        x = side * (a.body_width / 2 + PSOAS_RADIUS_MM[level] * 0.8)
        y = 0.1 * a.body_depth
        shapes.append(
            EllipticTube(
                pose.to_world((-half, y, x)),
                pose.to_world((half, y, x)),
                pose.rotation[:, 1],
                radius,
                radius * PSOAS_ASPECT + extra_mm * 0.2,
                ends="flat",
            )
        )
    return shapes


def gas_pockets(
    rng: np.random.Generator,
    count: int,
    torso: Torso,
    front_of_spine_h: float,
    d_range: tuple[float, float],
    radius_range: tuple[float, float],
) -> list[Shape]:
    """``count`` random ellipsoidal bowel-gas pockets in the abdomen in front of the spine."""
    shapes: list[Shape] = []
    front_h = torso.centre_h - torso.radius_h + torso.fat_mm
    for _ in range(count):
        radii = tuple(float(r) for r in rng.uniform(*radius_range, size=3))
        h = rng.uniform(front_h + radii[1] + 5.0, max(front_of_spine_h - radii[1], front_h + radii[1] + 6.0))
        w = torso.centre_w + rng.uniform(-0.5, 0.5) * torso.radius_w
        d = rng.uniform(*d_range)
        shapes.append(Ellipsoid(np.array([d, h, w]), (radii[0], radii[1], radii[2])))
    return shapes
