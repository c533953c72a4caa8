"""The spine curve: position and orientation of every vertebra of a run.

The vertebrae form a chain: each one is tilted against the previous one by the sagittal bend of the disc
between them (lordosis / kyphosis, scaled per case) and by a coronal (scoliotic) tilt, and sits one body
half-height + disc + body half-height further along the mean direction of the two. Coordinates are canonical
millimetres (D toward the feet, H toward the back, W toward the patient's left); rotation matrices map
vertebra-local (z cranio-caudal, y antero-posterior, x lateral) to canonical (D, H, W) directions.

Scoliosis: the coronal tilt of the vertebra at arc length ``s`` along a curve of length ``L`` is
``(cobb / 2) cos(pi s / L)``, so the end vertebrae are tilted by +-cobb/2 (their end plates meet at the
Cobb angle) and the apex, midway, deviates laterally by about ``cobb_rad * L / (2 pi)``. Each vertebra is
rotated axially (body toward the convexity) in proportion to its lateral deviation from the chord.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from x2ct.phantom.anatomy import LevelAnatomy


def rotation_sagittal(angle_rad: float) -> np.ndarray:
    """Rotation in the D-H plane: local z -> (cos a, sin a, 0) (positive: tilts toward posterior going down)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_coronal(angle_rad: float) -> np.ndarray:
    """Rotation in the D-W plane: local z -> (cos b, 0, sin b) (positive: tilts toward the left going down)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def rotation_axial(angle_rad: float) -> np.ndarray:
    """Rotation in the H-W plane about the spine axis: local y (posterior) -> (0, cos g, sin g)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def direction(sagittal_rad: float, coronal_rad: float) -> np.ndarray:
    """Unit direction (D, H, W) of the spine axis for the given sagittal and coronal tilts."""
    return rotation_coronal(coronal_rad) @ rotation_sagittal(sagittal_rad) @ np.array([1.0, 0.0, 0.0])


@dataclass(frozen=True)
class SpineShape:
    """Per-case curve parameters (degrees, mm)."""

    curvature_scale: float = 1.0  # multiplies the lordosis / kyphosis of the anatomy table
    cobb_deg: float = 0.0  # signed: positive = convex toward the patient's left (+W)
    rotation_per_cobb: float = 0.0  # apical axial rotation (deg) per degree of Cobb angle
    tilt_sagittal_deg: float = 0.0  # overall pose tilt
    tilt_coronal_deg: float = 0.0


@dataclass(frozen=True)
class VertebraPose:
    """Where one vertebra is: body centre (mm, D/H/W), rotation (3x3, local -> canonical) and its angles."""

    centre_mm: np.ndarray
    rotation: np.ndarray
    sagittal_deg: float
    coronal_deg: float
    axial_deg: float
    lateral_deviation_mm: float  # signed W distance from the chord joining the end vertebrae

    @property
    def axis(self) -> np.ndarray:
        """Cranio-caudal unit axis (pointing to the feet) in canonical (D, H, W)."""
        return self.rotation[:, 0]

    def to_world(self, local_zyx: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Canonical mm of a point given in vertebra-local (z, y, x) mm."""
        return self.centre_mm + self.rotation @ np.asarray(local_zyx, dtype=np.float64)

    def translated(self, offset_mm: np.ndarray) -> VertebraPose:
        return VertebraPose(
            self.centre_mm + offset_mm,
            self.rotation,
            self.sagittal_deg,
            self.coronal_deg,
            self.axial_deg,
            self.lateral_deviation_mm,
        )


def chain_steps(anatomy: list[LevelAnatomy]) -> np.ndarray:
    """Centre-to-centre distances (mm) between consecutive vertebrae: half body + disc + half body."""
    return np.array([a.body_height / 2 + a.disc_below + b.body_height / 2 for a, b in itertools.pairwise(anatomy)])


def scoliosis_tilts_deg(arc_mm: np.ndarray, cobb_deg: float) -> np.ndarray:
    """Coronal tilt (deg) at arc positions ``arc_mm`` (0 .. L) of a single scoliotic curve."""
    length = float(arc_mm[-1]) if len(arc_mm) else 0.0
    if length <= 0:
        return np.zeros_like(arc_mm)
    return cobb_deg / 2 * np.cos(np.pi * arc_mm / length)


def spine_poses(anatomy: list[LevelAnatomy], shape: SpineShape) -> list[VertebraPose]:
    """Poses of a run of vertebrae (cranial -> caudal); the first body centre is at the origin."""
    if not anatomy:
        raise ValueError("a spine needs at least one vertebra")
    steps = chain_steps(anatomy)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    bends = np.array([a.sagittal_bend_deg for a in anatomy[:-1]]) * shape.curvature_scale
    sagittal = np.concatenate([[0.0], np.cumsum(bends)])
    sagittal = sagittal - sagittal.mean() + shape.tilt_sagittal_deg
    coronal = scoliosis_tilts_deg(arc, shape.cobb_deg) + shape.tilt_coronal_deg

    centres = [np.zeros(3)]
    for i, step in enumerate(steps):
        mean_dir = direction(
            np.radians((sagittal[i] + sagittal[i + 1]) / 2), np.radians((coronal[i] + coronal[i + 1]) / 2)
        )
        centres.append(centres[-1] + step * mean_dir)
    centres_arr = np.array(centres)

    deviation = _lateral_deviation(centres_arr)
    max_dev = float(np.max(np.abs(deviation)))
    apical_rotation = shape.rotation_per_cobb * abs(shape.cobb_deg)
    # body toward the convexity: a deviation toward +W needs a negative rotation (see rotation_axial)
    axial = -apical_rotation * deviation / max_dev if max_dev > 0 else np.zeros(len(anatomy))

    return [
        VertebraPose(
            centre_mm=centres_arr[i],
            rotation=rotation_coronal(np.radians(coronal[i]))
            @ rotation_sagittal(np.radians(sagittal[i]))
            @ rotation_axial(np.radians(axial[i])),
            sagittal_deg=float(sagittal[i]),
            coronal_deg=float(coronal[i]),
            axial_deg=float(axial[i]),
            lateral_deviation_mm=float(deviation[i]),
        )
        for i in range(len(anatomy))
    ]


def _lateral_deviation(centres: np.ndarray) -> np.ndarray:
    """Signed W offset (mm) of each centre from the straight line through the first and last centre."""
    if len(centres) < 3:
        return np.zeros(len(centres))
    first, last = centres[0], centres[-1]
    span = last[0] - first[0]
    fraction = (centres[:, 0] - first[0]) / span if abs(span) > 0 else np.zeros(len(centres))
    chord_w = first[2] + fraction * (last[2] - first[2])
    return centres[:, 2] - chord_w
