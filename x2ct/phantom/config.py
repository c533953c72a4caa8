"""Configuration of the phantom generator: the ranges every per-case random draw comes from.

A range ``(low, high)`` is sampled uniformly per case; ``(x, x)`` fixes the value. All values are plain
numbers / tuples so a Hydra structured config can fill them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from x2ct.phantom.anatomy import level_run

Range = tuple[float, float]

MAX_COBB_DEG: float = 90.0


@dataclass(frozen=True)
class TissueHU:
    """HU ranges of the tissues (each case draws one value per tissue; bone also jitters per vertebra)."""

    cortical: Range = (800.0, 1400.0)
    cancellous: Range = (150.0, 300.0)
    disc: Range = (70.0, 100.0)
    canal: Range = (20.0, 40.0)
    muscle: Range = (40.0, 60.0)
    fat: Range = (-110.0, -90.0)
    soft_tissue: Range = (20.0, 45.0)
    gas: Range = (-1000.0, -900.0)
    air: float = -1000.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "air":
                _check_range(f"hu.{f.name}", getattr(self, f.name), lower=-1024.0, upper=3071.0)


@dataclass(frozen=True)
class PhantomConfig:
    """Ranges of the per-case randomization of the spine phantom (mm, degrees, HU).

    Attributes:
        level_range: first and last level of the pool (inclusive), e.g. ("T8", "L5") as in the
            abdominal COLONOG CTs of the paper.
        n_levels: the number of contiguous levels of a case, drawn from this range (inclusive).
        inplane_spacing_mm: voxel size along H and W (same for both).
        slice_spacing_mm: voxel size along D.
        fov_mm: in-plane field of view (H, W); the torso must fit along H.
        margin_mm: cranio-caudal margin above the first and below the last vertebra.
        size_scale: factor on all vertebra dimensions.
        curvature_scale: factor on the lordosis / kyphosis of the anatomy table.
        cobb_deg: magnitude of the scoliotic curve (convexity side random), 0 = straight.
        rotation_per_cobb: apical axial rotation of the vertebrae per degree of Cobb angle.
        tilt_deg: maximum overall sagittal and coronal tilt of the spine (pose), each uniform +-tilt.
        shift_mm: maximum lateral shift of the spine against the torso midline.
        torso_radius_h_mm / torso_radius_w_mm: semi-axes of the elliptic torso outline.
        fat_mm: subcutaneous fat thickness.
        muscle_cover_mm: soft tissue between the spinous-process tips and the fat.
        cortical_shell_mm: thickness of the cortical bone shell.
        hu: tissue HU ranges; bone_hu_jitter: relative per-vertebra jitter of the bone HU (clipped to range).
        noise_std_hu: standard deviation of the additive Gaussian image noise.
        ribs: draw ribs on thoracic levels.
        gas_pockets: number of bowel-gas pockets (inclusive range); gas_radius_mm their semi-axes.
        edge_mm: width of the soft (partial-volume) edges; None = mean voxel size.
    """

    level_range: tuple[str, str] = ("T8", "L5")
    n_levels: tuple[int, int] = (5, 8)
    inplane_spacing_mm: Range = (0.7, 1.0)
    slice_spacing_mm: Range = (0.8, 2.5)
    fov_mm: tuple[float, float] = (250.0, 200.0)
    margin_mm: float = 10.0
    size_scale: Range = (0.9, 1.1)
    curvature_scale: Range = (0.6, 1.4)
    cobb_deg: Range = (0.0, 30.0)
    rotation_per_cobb: float = 0.4
    tilt_deg: float = 4.0
    shift_mm: float = 5.0
    torso_radius_h_mm: Range = (100.0, 120.0)
    torso_radius_w_mm: Range = (130.0, 165.0)
    fat_mm: Range = (6.0, 25.0)
    muscle_cover_mm: Range = (3.0, 10.0)
    cortical_shell_mm: Range = (1.0, 1.8)
    hu: TissueHU = field(default_factory=TissueHU)
    bone_hu_jitter: float = 0.05
    noise_std_hu: Range = (3.0, 20.0)
    ribs: bool = True
    gas_pockets: tuple[int, int] = (0, 3)
    gas_radius_mm: Range = (8.0, 22.0)
    edge_mm: float | None = None

    def __post_init__(self) -> None:
        pool = self.pool()
        lo, hi = self.n_levels
        if lo < 1 or hi < lo:
            raise ValueError(
                f"n_levels {self.n_levels}: the run of levels is empty or the range is reversed (need 1 <= low <= high)"
            )
        if hi > len(pool):
            raise ValueError(
                f"n_levels {self.n_levels}: at most {len(pool)} levels fit in the pool "
                f"{self.level_range[0]}..{self.level_range[1]}"
            )
        _check_range("inplane_spacing_mm", self.inplane_spacing_mm, lower=1e-3)
        _check_range("slice_spacing_mm", self.slice_spacing_mm, lower=1e-3)
        _check_range("fov_mm", self.fov_mm, lower=1.0, ordered=False)
        _check_range("size_scale", self.size_scale, lower=0.1, upper=10.0)
        _check_range("curvature_scale", self.curvature_scale, lower=0.0)
        _check_range("cobb_deg", self.cobb_deg, lower=0.0, upper=MAX_COBB_DEG)
        _check_range("torso_radius_h_mm", self.torso_radius_h_mm, lower=1.0)
        _check_range("torso_radius_w_mm", self.torso_radius_w_mm, lower=1.0)
        _check_range("fat_mm", self.fat_mm, lower=0.0)
        _check_range("muscle_cover_mm", self.muscle_cover_mm, lower=0.0)
        _check_range("cortical_shell_mm", self.cortical_shell_mm, lower=0.1)
        _check_range("noise_std_hu", self.noise_std_hu, lower=0.0)
        _check_range("gas_radius_mm", self.gas_radius_mm, lower=0.5)
        _check_range("gas_pockets", self.gas_pockets, lower=0)
        for name in ("margin_mm", "rotation_per_cobb", "tilt_deg", "shift_mm", "bone_hu_jitter"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.edge_mm is not None and not (math.isfinite(self.edge_mm) and self.edge_mm > 0):
            raise ValueError(f"edge_mm must be positive or None, got {self.edge_mm}")
        if 2 * self.torso_radius_h_mm[1] > self.fov_mm[0]:
            raise ValueError(
                f"torso_radius_h_mm {self.torso_radius_h_mm} does not fit in the field of view "
                f"fov_mm[0] = {self.fov_mm[0]} mm along H"
            )
        if self.fat_mm[1] >= min(self.torso_radius_h_mm[0], self.torso_radius_w_mm[0]):
            raise ValueError(f"fat_mm {self.fat_mm} leaves no room inside the torso {self.torso_radius_h_mm}")

    def pool(self) -> tuple[str, ...]:
        """Level names of the pool, cranial -> caudal (raises ValueError on unknown or reversed names)."""
        if len(self.level_range) != 2:
            raise ValueError(f"level_range must be (first, last), got {self.level_range}")
        return level_run(*self.level_range)


def _check_range(
    name: str, value: tuple[float, float], lower: float | None = None, upper: float | None = None, ordered: bool = True
) -> None:
    if len(value) != 2 or not all(math.isfinite(v) for v in value):
        raise ValueError(f"{name} must be two finite numbers, got {value}")
    lo, hi = value
    if ordered and hi < lo:
        raise ValueError(f"{name} {value}: the range is reversed (low > high)")
    if lower is not None and min(value) < lower:
        raise ValueError(f"{name} {value}: values must be >= {lower}")
    if upper is not None and max(value) > upper:
        raise ValueError(f"{name} {value}: values must be <= {upper}")
