"""``make_phantom``: one random, reproducible spine CT with vertebra labels.

Drawing order (later shapes are blended over earlier ones): torso (air, fat, soft tissue), psoas fat
planes and muscles, erector spinae, bowel gas, discs, canal, ribs, vertebrae; then Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from x2ct.io.volume import Volume, canonical_affine
from x2ct.phantom.anatomy import LEVEL_ANATOMY, LEVEL_NAMES, LevelAnatomy, has_ribs, level_label
from x2ct.phantom.canvas import BoneCanvas, VoxelGrid, paint
from x2ct.phantom.case_id import phantom_case_id
from x2ct.phantom.centreline import SpineShape, VertebraPose, spine_poses
from x2ct.phantom.config import PhantomConfig, Range
from x2ct.phantom.noise import add_gaussian_noise
from x2ct.phantom.ribs import rib_shapes
from x2ct.phantom.soft_tissue import (
    FAT_PLANE_MM,
    RIB_INSET_EXTRA_MM,
    Torso,
    disc_shapes,
    erector_spinae,
    gas_pockets,
    psoas,
)
from x2ct.phantom.vertebra import VertebraShapes, posterior_reach_mm, vertebra_shapes

GENERATOR_VERSION: str = "1"
"""Bumped whenever the same seed would give a different volume."""


@dataclass(frozen=True)
class CaseDraw:
    """Every random choice of one case (drawn in a fixed order from the seed)."""

    levels: tuple[str, ...]
    size_scale: float
    spine: SpineShape
    shift_mm: float
    spacing: tuple[float, float, float]
    torso_radius_h_mm: float
    torso_radius_w_mm: float
    fat_mm: float
    muscle_cover_mm: float
    cortical_shell_mm: float
    hu: dict[str, float]
    bone_hu: list[tuple[float, float]]  # (cortical, cancellous) per vertebra
    noise_std_hu: float
    gas_pockets: int


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def draw_case(rng: np.random.Generator, config: PhantomConfig) -> CaseDraw:
    """Draw the random parameters of one case from ``config``'s ranges."""
    pool = config.pool()
    n = int(rng.integers(config.n_levels[0], config.n_levels[1] + 1))
    start = int(rng.integers(0, len(pool) - n + 1))
    levels = pool[start : start + n]
    size_scale = _uniform(rng, config.size_scale)
    cobb = _uniform(rng, config.cobb_deg) * (1.0 if rng.random() < 0.5 else -1.0)
    spine = SpineShape(
        curvature_scale=_uniform(rng, config.curvature_scale),
        cobb_deg=cobb,
        rotation_per_cobb=config.rotation_per_cobb,
        tilt_sagittal_deg=_uniform(rng, (-config.tilt_deg, config.tilt_deg)),
        tilt_coronal_deg=_uniform(rng, (-config.tilt_deg, config.tilt_deg)),
    )
    shift = _uniform(rng, (-config.shift_mm, config.shift_mm))
    inplane = _uniform(rng, config.inplane_spacing_mm)
    spacing = (_uniform(rng, config.slice_spacing_mm), inplane, inplane)
    torso_h = _uniform(rng, config.torso_radius_h_mm)
    torso_w = _uniform(rng, config.torso_radius_w_mm)
    fat = _uniform(rng, config.fat_mm)
    cover = _uniform(rng, config.muscle_cover_mm)
    shell = _uniform(rng, config.cortical_shell_mm)
    tissues = ("cortical", "cancellous", "disc", "canal", "muscle", "fat", "soft_tissue", "gas")
    hu = {name: _uniform(rng, getattr(config.hu, name)) for name in tissues}
    hu["air"] = config.hu.air
    bone_hu = []
    for _ in levels:
        jitter = rng.uniform(-config.bone_hu_jitter, config.bone_hu_jitter, size=2)
        bone_hu.append(
            (
                float(np.clip(hu["cortical"] * (1 + jitter[0]), *config.hu.cortical)),
                float(np.clip(hu["cancellous"] * (1 + jitter[1]), *config.hu.cancellous)),
            )
        )
    noise = _uniform(rng, config.noise_std_hu)
    gas = int(rng.integers(config.gas_pockets[0], config.gas_pockets[1] + 1))
    return CaseDraw(
        levels, size_scale, spine, shift, spacing, torso_h, torso_w, fat, cover, shell, hu, bone_hu, noise, gas
    )


def _disc_above(level: str, scale: float) -> float:
    index = LEVEL_NAMES.index(level)
    source = LEVEL_NAMES[index - 1] if index > 0 else level
    return LEVEL_ANATOMY[source].disc_below * scale


def _layout(
    draw: CaseDraw, anatomy: list[LevelAnatomy], poses: list[VertebraPose], config: PhantomConfig
) -> tuple[np.ndarray, tuple[int, int, int], Torso]:
    """Offset (mm) that places the spine in the volume, the volume shape, and the torso."""
    shapes = [vertebra_shapes(a, p, lv) for a, p, lv in zip(anatomy, poses, draw.levels, strict=True)]
    d_lo = min(s.bounds_mm()[0][0] for v in shapes for s in v.bone)
    d_hi = max(s.bounds_mm()[1][0] for v in shapes for s in v.bone)
    fov_h, fov_w = config.fov_mm
    torso_centre_h = fov_h / 2
    back_skin_h = torso_centre_h + draw.torso_radius_h_mm
    # the spinous tips sit, on average, under the fat and a layer of muscle; none reaches into the fat
    reach = np.array([p.centre_mm[1] + posterior_reach_mm(a) for a, p in zip(anatomy, poses, strict=True)])
    under_fat = back_skin_h - draw.fat_mm
    offset_h = min(under_fat - draw.muscle_cover_mm - float(reach.mean()), under_fat - float(reach.max()))
    chord_w = (poses[0].centre_mm[2] + poses[-1].centre_mm[2]) / 2
    offset = np.array([config.margin_mm - d_lo, offset_h, fov_w / 2 + draw.shift_mm - chord_w])
    sd, sh, sw = draw.spacing
    shape = (math.ceil((d_hi - d_lo + 2 * config.margin_mm) / sd) + 1, round(fov_h / sh), round(fov_w / sw))
    torso = Torso(torso_centre_h, fov_w / 2, draw.torso_radius_h_mm, draw.torso_radius_w_mm, draw.fat_mm)
    return offset, shape, torso


def make_phantom(seed: int, config: PhantomConfig | None = None, case_id: str | None = None) -> Volume:
    """A procedural spine CT in canonical axes (D, H, W) with vertebra labels.

    Returns a ``Volume`` with ``hu`` float32 HU (air -1000), ``labels`` int16 in CTSpine1K numbering (only the
    case's levels; discs and ribs 0), the drawn spacing and ``canonical_affine(spacing)``. Identical for the
    same ``seed`` and ``config``. ``meta`` records every random choice.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    config = config if config is not None else PhantomConfig()
    if not isinstance(config, PhantomConfig):
        raise TypeError(f"config must be a PhantomConfig, got {type(config).__name__}")
    rng = np.random.default_rng(int(seed))
    draw = draw_case(rng, config)
    anatomy = [LEVEL_ANATOMY[lv].scaled(draw.size_scale) for lv in draw.levels]
    poses = spine_poses(anatomy, draw.spine)
    offset, shape, torso = _layout(draw, anatomy, poses, config)
    poses = [p.translated(offset) for p in poses]
    grid = VoxelGrid(shape, draw.spacing)
    edge = config.edge_mm if config.edge_mm is not None else float(np.mean(draw.spacing))
    hu_of = draw.hu

    hu = np.empty(shape, dtype=np.float32)
    hu[:] = torso.cross_section_hu(grid, hu_of["air"], hu_of["fat"], hu_of["soft_tissue"], edge)
    labels = np.zeros(shape, dtype=np.int16)

    vertebrae: list[VertebraShapes] = [
        vertebra_shapes(a, p, lv) for a, p, lv in zip(anatomy, poses, draw.levels, strict=True)
    ]
    for a, p, lv in zip(anatomy, poses, draw.levels, strict=True):
        for fat_plane in psoas(a, p, lv, extra_mm=FAT_PLANE_MM):
            paint(hu, grid, fat_plane, hu_of["fat"], edge)
    for a, p, lv in zip(anatomy, poses, draw.levels, strict=True):
        for muscle in [*psoas(a, p, lv), *erector_spinae(a, p, torso)]:
            paint(hu, grid, muscle, hu_of["muscle"], edge)
    front_of_spine = min(p.centre_mm[1] - a.body_depth / 2 for a, p in zip(anatomy, poses, strict=True))
    for pocket in gas_pockets(
        rng, draw.gas_pockets, torso, front_of_spine, (0.0, shape[0] * draw.spacing[0]), config.gas_radius_mm
    ):
        paint(hu, grid, pocket, hu_of["gas"], edge)
    for disc in disc_shapes(anatomy, poses, _disc_above(draw.levels[0], draw.size_scale)):
        paint(hu, grid, disc, hu_of["disc"], edge)
    for v in vertebrae:
        paint(hu, grid, v.canal, hu_of["canal"], edge)
    if config.ribs:
        inset = draw.fat_mm + RIB_INSET_EXTRA_MM
        radii = (torso.radius_h - inset, torso.radius_w - inset)
        for a, p, lv, v in zip(anatomy, poses, draw.levels, vertebrae, strict=True):
            if not has_ribs(lv):
                continue
            for rib in rib_shapes(
                lv, a, p, v.transverse_tips_mm, (torso.centre_h, torso.centre_w), radii, draw.size_scale
            ):
                canvas = BoneCanvas(grid, rib)
                canvas.composite(hu, draw.hu["cortical"], draw.hu["cancellous"], draw.cortical_shell_mm, edge)
    for lv, v, (cortical, cancellous) in zip(draw.levels, vertebrae, draw.bone_hu, strict=True):
        canvas = BoneCanvas(grid, v.bone)
        canvas.cut(v.canal)
        result = canvas.composite(hu, cortical, cancellous, draw.cortical_shell_mm, edge)
        if result is not None:
            region, occ = result
            labels[region][occ >= 0.5] = level_label(lv)

    add_gaussian_noise(hu, draw.noise_std_hu, rng)

    meta = {
        "source": "phantom",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "levels": list(draw.levels),
        "label_ids": [level_label(lv) for lv in draw.levels],
        "size_scale": draw.size_scale,
        "curvature_scale": draw.spine.curvature_scale,
        "cobb_deg": abs(draw.spine.cobb_deg),
        "scoliosis_convexity": "none" if draw.spine.cobb_deg == 0 else ("left" if draw.spine.cobb_deg > 0 else "right"),
        "apical_rotation_deg": draw.spine.rotation_per_cobb * abs(draw.spine.cobb_deg),
        "tilt_sagittal_deg": draw.spine.tilt_sagittal_deg,
        "tilt_coronal_deg": draw.spine.tilt_coronal_deg,
        "shift_mm": draw.shift_mm,
        "spacing": list(draw.spacing),
        "shape": list(shape),
        "centres_mm": [p.centre_mm.round(3).tolist() for p in poses],
        "sagittal_deg": [round(p.sagittal_deg, 3) for p in poses],
        "coronal_deg": [round(p.coronal_deg, 3) for p in poses],
        "axial_rotation_deg": [round(p.axial_deg, 3) for p in poses],
        "lateral_deviation_mm": [round(p.lateral_deviation_mm, 3) for p in poses],
        "torso": {
            "centre_h_mm": torso.centre_h,
            "centre_w_mm": torso.centre_w,
            "radius_h_mm": torso.radius_h,
            "radius_w_mm": torso.radius_w,
            "fat_mm": torso.fat_mm,
        },
        "muscle_cover_mm": draw.muscle_cover_mm,
        "cortical_shell_mm": draw.cortical_shell_mm,
        "hu": dict(draw.hu),
        "bone_hu": [list(b) for b in draw.bone_hu],
        "noise_std_hu": draw.noise_std_hu,
        "gas_pockets": draw.gas_pockets,
        "edge_mm": edge,
        "config": asdict(config),
    }
    return Volume(
        hu=hu,
        labels=labels,
        spacing=draw.spacing,
        affine=canonical_affine(draw.spacing),
        case_id=case_id if case_id is not None else phantom_case_id(int(seed)),
        meta=meta,
    )
