"""The shapes of one vertebra: body, pedicles, laminae, spinous process, transverse and articular processes,
and the vertebral canal that is cut out of them.

Everything is laid out in the vertebra-local frame (z toward the feet, y toward the back, x toward the
patient's left; origin at the body centre; see ``anatomy``) and placed in the volume by the vertebra's pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from x2ct.phantom.anatomy import LevelAnatomy, is_atlas, is_axis
from x2ct.phantom.centreline import VertebraPose
from x2ct.phantom.shapes import EllipticTube, Shape, VertebralBody

ENDPLATE_CONCAVITY_FRACTION: float = 0.07
"""Depth of the end-plate concavity as a fraction of the body height (about 2 mm in the lumbar spine)."""
BODY_WAIST: float = 0.06
"""Fractional narrowing of the body at mid-height."""
POSTERIOR_FLATTENING: float = 0.08
"""Fraction of the body depth cut flat at the posterior wall (the kidney-shaped axial outline)."""
PEDICLE_LEVEL: float = -0.15
"""Cranio-caudal position of the pedicles as a fraction of the body height (negative = upper half)."""
PEDICLE_CANAL_OVERLAP: float = 0.2
"""Fraction of the pedicle width that overlaps the canal (the canal cut shapes the medial wall)."""
LAMINA_CAUDAL_SHIFT: float = 0.15
"""Laminae and spinous process sit lower than the pedicles by this fraction of the body height."""
FACET_REACH: float = 0.5
"""Articular processes reach this fraction of the disc height beyond the end plates."""
DENS_LENGTH_MM: float = 15.0
DENS_DIAMETER_MM: float = 9.0


@dataclass(frozen=True)
class VertebraShapes:
    """Bone parts and the canal of one vertebra (canonical mm)."""

    bone: list[Shape]
    canal: Shape
    spinous_tip_mm: np.ndarray  # canonical position of the spinous process tip
    transverse_tips_mm: tuple[np.ndarray, np.ndarray]  # right (-x), left (+x)


def posterior_reach_mm(a: LevelAnatomy) -> float:
    """Local y (mm behind the body centre) of the back of the spinous process tip."""
    lamina_y = a.body_depth * (0.5 - POSTERIOR_FLATTENING) + a.canal_depth + a.lamina_thickness / 2
    return lamina_y + a.spinous_length * np.cos(np.radians(a.spinous_angle_deg)) + a.spinous_thickness


def vertebra_shapes(a: LevelAnatomy, pose: VertebraPose, level: str) -> VertebraShapes:
    """Shapes of a vertebra with anatomy ``a`` (already size-scaled) at ``pose``; ``level`` selects the
    special forms of C1 (no body) and C2 (dens)."""
    world = pose.to_world
    z_axis, y_axis, x_axis = pose.rotation[:, 0], pose.rotation[:, 1], pose.rotation[:, 2]
    half_h = a.body_height / 2
    wall_y = a.body_depth * (0.5 - POSTERIOR_FLATTENING)
    canal_y = wall_y + a.canal_depth / 2
    ped_z = PEDICLE_LEVEL * a.body_height
    ped_x = a.canal_width / 2 + a.pedicle_width * (0.5 - PEDICLE_CANAL_OVERLAP)
    ped_back_y = canal_y + 0.35 * a.canal_depth
    lam_z = ped_z + LAMINA_CAUDAL_SHIFT * a.body_height
    lam_mid_y = wall_y + a.canal_depth + a.lamina_thickness / 2
    reach = FACET_REACH * a.disc_below

    bone: list[Shape] = []
    if is_atlas(level):
        arch_y = -a.body_depth / 2 + a.lamina_thickness / 2
        for side in (-1.0, 1.0):
            bone.append(
                EllipticTube(
                    world((0, arch_y, 0)),
                    world((0, 0.4 * canal_y, side * ped_x)),
                    z_axis,
                    a.lamina_thickness / 2,
                    a.lamina_height / 2,
                )
            )
            bone.append(
                EllipticTube(
                    world((-half_h, 0.4 * canal_y, side * ped_x)),
                    world((half_h, 0.4 * canal_y, side * ped_x)),
                    y_axis,
                    a.pedicle_width / 2 + 2,
                    a.pedicle_height / 2 + 2,
                )
            )
    else:
        bone.append(
            VertebralBody(
                pose.centre_mm,
                pose.rotation,
                a.body_width,
                a.body_depth,
                a.body_height,
                ENDPLATE_CONCAVITY_FRACTION * a.body_height,
                BODY_WAIST,
                POSTERIOR_FLATTENING,
            )
        )
    if is_axis(level):
        bone.append(
            EllipticTube(
                world((-half_h, -0.1 * a.body_depth, 0)),
                world((-half_h - DENS_LENGTH_MM, -0.1 * a.body_depth, 0)),
                y_axis,
                DENS_DIAMETER_MM / 2,
                DENS_DIAMETER_MM / 2,
            )
        )

    convergence = np.tan(np.radians(a.pedicle_convergence_deg))
    transverse_tips = []
    for side in (-1.0, 1.0):
        ped_front_y = wall_y - 0.25 * a.body_depth
        ped_front_x = ped_x - convergence * (ped_back_y - ped_front_y)
        junction = (ped_z, ped_back_y, side * ped_x)
        bone.append(
            EllipticTube(
                world((ped_z, ped_front_y, side * max(ped_front_x, 0.0))),
                world(junction),
                z_axis,
                a.pedicle_width / 2,
                a.pedicle_height / 2,
            )
        )
        # lamina: a plate from the pedicle back to the midline behind the canal
        bone.append(
            EllipticTube(
                world((lam_z, ped_back_y, side * ped_x)),
                world((lam_z, lam_mid_y, 0.0)),
                z_axis,
                a.lamina_thickness / 2,
                a.lamina_height / 2,
            )
        )
        # transverse process, inclined backward
        back = np.tan(np.radians(a.transverse_back_deg)) * (a.transverse_span - ped_x)
        tip = (ped_z, ped_back_y - a.transverse_diameter / 4 + back, side * a.transverse_span)
        bone.append(
            EllipticTube(
                world((ped_z, ped_back_y - a.transverse_diameter / 4, side * ped_x)),
                world(tip),
                z_axis,
                a.transverse_diameter / 3,
                a.transverse_diameter / 2,
            )
        )
        transverse_tips.append(world(tip))
        # superior and inferior articular processes
        facet_r = a.facet_diameter / 2
        bone.append(
            EllipticTube(
                world((ped_z, ped_back_y + facet_r * 0.3, side * ped_x * 1.05)),
                world((-half_h - reach, ped_back_y + facet_r * 0.5, side * ped_x * 1.1)),
                y_axis,
                facet_r * 0.8,
                facet_r * 1.1,
            )
        )
        bone.append(
            EllipticTube(
                world((lam_z, ped_back_y + facet_r * 1.4, side * ped_x * 0.9)),
                world((half_h + reach, ped_back_y + facet_r * 1.8, side * ped_x * 0.85)),
                y_axis,
                facet_r * 0.8,
                facet_r * 1.1,
            )
        )

    # spinous process: from the lamina junction backward and (thoracic) steeply down
    angle = np.radians(a.spinous_angle_deg)
    sp_start = (lam_z, lam_mid_y, 0.0)
    sp_tip = (lam_z + a.spinous_length * np.sin(angle), lam_mid_y + a.spinous_length * np.cos(angle), 0.0)
    bone.append(EllipticTube(world(sp_start), world(sp_tip), x_axis, a.spinous_height / 2, a.spinous_thickness / 2))

    canal_half = half_h + a.disc_below / 2 + 1.0
    canal = EllipticTube(
        world((-canal_half, canal_y, 0.0)),
        world((canal_half, canal_y, 0.0)),
        y_axis,
        a.canal_width / 2,
        a.canal_depth / 2,
        ends="flat",
    )
    return VertebraShapes(bone, canal, world(sp_tip), (transverse_tips[0], transverse_tips[1]))
