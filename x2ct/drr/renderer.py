"""DRR rendering from a HU volume: configuration, HU -> attenuation, projection, display and provenance."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from x2ct.drr.display import (
    DEFAULT_OBJECT_FRACTION,
    DEFAULT_PERCENTILES,
    check_object_fraction,
    check_percentiles,
    check_window,
    unit_to_uint8,
    window_to_uint8,
)
from x2ct.drr.geometry import GEOMETRIES, ViewSpec, detector_layout, volume_centre_mm
from x2ct.drr.physics import (
    DEFAULT_HU_CLIP,
    MU_WATER_70KEV_PER_MM,
    SLICER_ALPHA_MAX,
    SLICER_HU_HIGH,
    SLICER_HU_LOW,
    SLICER_UNIT_MM,
    hu_to_mu,
    slicer_extinction,
    slicer_image,
)
from x2ct.drr.projector import METHODS, RayProjector, build_projector, check_volume, stack_views

MODES: tuple[str, ...] = ("physical", "slicer")
DEFAULT_VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(name="xray1", angle_deg=0.0, lateral=False),
    ViewSpec(name="xray2", angle_deg=90.0, lateral=True),
)
# Attribute-name suffixes of the two-element config fields.
PAIR_SUFFIXES: dict[str, tuple[str, str]] = {"detector_shape": ("rows", "cols"), "detector_pitch_mm": ("row", "col")}
# Ray plans kept per renderer (keyed by shape, spacing, isocentre, views, device, dtype).
PLAN_CACHE_SIZE: int = 4


@dataclass(frozen=True)
class DRRConfig:
    """DRR settings (every field has a default; a Hydra config passes overrides).

    Attributes:
        mode: "physical" (line integral of mu, float) or "slicer" (3D Slicer CT-X-ray look, [0, 1]).
        geometry: "cone" (point source) or "parallel".
        method: "joseph" (plane-by-plane bilinear, fast) or "trilinear" (n_samples 3D samples per ray).
        sid_mm, sod_mm: source-to-detector and source-to-isocentre distances (sid > sod > 0); only sod shapes
            the rays (the detector is modelled on the iso plane); sid sets the recorded physical pixel size.
        n_samples: samples per ray for method "trilinear" (>= 1).
        mu_water: attenuation of water in 1/mm (0.0193 at 70 keV). hu_clip: HU range before conversion.
        detector_shape: (rows, cols) for every view; None = (D, W) for AP-like, (D, H) for lateral-like views.
        detector_pitch_mm: (row, col) pitch back-projected on the iso plane; None = the voxel spacing.
        slicer_hu_low, slicer_hu_high, slicer_alpha_max, slicer_unit_mm: slicer opacity ramp (0 at hu_low to
            alpha_max at hu_high, per unit_mm of path).
        display_percentiles: per-image percentile window for uint8 (physical mode).
        display_window: fixed (lo, hi) window of p instead of percentiles, or None.
        display_object_fraction: take the percentile window over pixels with p >= this fraction of the high
            percentile (the body, not the air around it); None uses every pixel.
    """

    mode: str = "physical"
    geometry: str = "cone"
    method: str = "joseph"
    sid_mm: float = 1000.0
    sod_mm: float = 850.0
    n_samples: int = 256
    mu_water: float = MU_WATER_70KEV_PER_MM
    hu_clip: tuple[float, float] = DEFAULT_HU_CLIP
    detector_shape: tuple[int, int] | None = None
    detector_pitch_mm: tuple[float, float] | None = None
    slicer_hu_low: float = SLICER_HU_LOW
    slicer_hu_high: float = SLICER_HU_HIGH
    slicer_alpha_max: float = SLICER_ALPHA_MAX
    slicer_unit_mm: float = SLICER_UNIT_MM
    display_percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    display_window: tuple[float, float] | None = None
    display_object_fraction: float | None = DEFAULT_OBJECT_FRACTION

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown DRR mode {self.mode!r}; expected one of {MODES}")
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"unknown DRR geometry {self.geometry!r}; expected one of {GEOMETRIES}")
        if self.method not in METHODS:
            raise ValueError(f"unknown DRR method {self.method!r}; expected one of {METHODS}")
        if not 0.0 < self.sod_mm < self.sid_mm:
            raise ValueError(f"need 0 < sod_mm < sid_mm, got sod_mm={self.sod_mm}, sid_mm={self.sid_mm}")
        if int(self.n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1, got {self.n_samples}")
        if self.mu_water <= 0:
            raise ValueError(f"mu_water must be positive (1/mm), got {self.mu_water}")
        check_window(self.hu_clip, "hu_clip")
        if self.hu_clip[0] < -1000.0:
            raise ValueError(f"hu_clip low must be >= -1000 HU so that mu >= 0, got {self.hu_clip}")
        if self.detector_shape is not None and (len(self.detector_shape) != 2 or min(self.detector_shape) < 1):
            raise ValueError(f"detector_shape must be (rows, cols) >= 1, got {self.detector_shape}")
        if self.detector_pitch_mm is not None and (
            len(self.detector_pitch_mm) != 2 or min(self.detector_pitch_mm) <= 0
        ):
            raise ValueError(f"detector_pitch_mm must be two positive mm values, got {self.detector_pitch_mm}")
        check_window((self.slicer_hu_low, self.slicer_hu_high), "slicer HU breakpoints")
        if not 0.0 < self.slicer_alpha_max < 1.0:
            raise ValueError(f"slicer_alpha_max must lie in (0, 1), got {self.slicer_alpha_max}")
        if self.slicer_unit_mm <= 0:
            raise ValueError(f"slicer_unit_mm must be positive, got {self.slicer_unit_mm}")
        check_percentiles(self.display_percentiles)
        if self.display_window is not None:
            check_window(self.display_window)
        if self.display_object_fraction is not None:
            check_object_fraction(self.display_object_fraction)

    @property
    def magnification(self) -> float:
        """Detector magnification of the iso plane, sid / sod (1 for a parallel beam)."""
        return self.sid_mm / self.sod_mm if self.geometry == "cone" else 1.0


def _isocentres(
    isocenter_mm: Sequence[float] | np.ndarray | torch.Tensor | None,
    batch: int,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
) -> np.ndarray:
    """Isocentres as (B, 3) float64 mm; None = the volume centre for every volume."""
    if isocenter_mm is None:
        return np.tile(volume_centre_mm(shape, spacing), (batch, 1))
    if isinstance(isocenter_mm, torch.Tensor):
        isocenter_mm = isocenter_mm.detach().cpu().numpy()
    iso = np.asarray(isocenter_mm, dtype=np.float64)
    if iso.shape == (3,):
        iso = np.tile(iso, (batch, 1))
    if iso.shape != (batch, 3) or not np.all(np.isfinite(iso)):
        raise ValueError(f"isocenter_mm must be (3,) or ({batch}, 3) finite mm values, got shape {iso.shape}")
    return iso


class DRRRenderer:
    """Renders DRRs of HU volumes with a :class:`DRRConfig`; caches ray plans between calls."""

    def __init__(self, cfg: DRRConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else DRRConfig()
        self._plans: OrderedDict[tuple, RayProjector] = OrderedDict()
        self._last: dict[str, float | int | str] = {}

    def _projector(
        self,
        shape: tuple[int, int, int],
        spacing: tuple[float, float, float],
        iso: np.ndarray,
        views: tuple[ViewSpec, ...],
        device: torch.device,
        dtype: torch.dtype,
    ) -> RayProjector:
        key = (shape, spacing, tuple(np.round(iso, 9).tolist()), views, str(device), dtype)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        cfg = self.cfg
        projector = build_projector(
            shape,
            spacing,
            views,
            iso,
            geometry=cfg.geometry,
            sod_mm=cfg.sod_mm,
            n_samples=cfg.n_samples,
            method=cfg.method,
            detector_shape=cfg.detector_shape,
            detector_pitch_mm=cfg.detector_pitch_mm,
            device=device,
            dtype=dtype,
        )
        self._plans[key] = projector
        while len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        return projector

    def integrand(self, hu: torch.Tensor) -> torch.Tensor:
        """HU -> the per-mm quantity integrated along rays: mu (physical) or kappa (slicer), 1/mm."""
        cfg = self.cfg
        if cfg.mode == "physical":
            return hu_to_mu(hu, cfg.mu_water, cfg.hu_clip)
        return slicer_extinction(hu, cfg.slicer_hu_low, cfg.slicer_hu_high, cfg.slicer_alpha_max, cfg.slicer_unit_mm)

    def render_views(
        self,
        hu: torch.Tensor,
        spacing: Sequence[float],
        isocenter_mm: Sequence[float] | np.ndarray | torch.Tensor | None = None,
        views: Sequence[ViewSpec] = DEFAULT_VIEWS,
    ) -> dict[str, torch.Tensor]:
        """Like :meth:`render` but returns ``{view name: (R, C) or (B, R, C)}``; views may differ in shape."""
        volume = check_volume(hu, spacing)
        views = tuple(views)
        if not views:
            raise ValueError("at least one view is needed")
        names = [v.name for v in views]
        if len(set(names)) != len(names):
            raise ValueError(f"view names must be unique, got {names}")
        shape = tuple(int(n) for n in volume.shape[1:])
        spacing_t = tuple(float(s) for s in spacing)
        isos = _isocentres(isocenter_mm, volume.shape[0], shape, spacing_t)
        integrand = self.integrand(volume)
        if np.all(isos == isos[:1]):
            projector = self._projector(shape, spacing_t, isos[0], views, volume.device, volume.dtype)
            images = projector(integrand)
        else:  # one plan per distinct isocentre
            per_volume = [
                self._projector(shape, spacing_t, iso, views, volume.device, volume.dtype)(integrand[i : i + 1])
                for i, iso in enumerate(isos)
            ]
            images = [torch.cat([imgs[v] for imgs in per_volume]) for v in range(len(views))]
        if self.cfg.mode == "slicer":
            images = [slicer_image(img) for img in images]
        self._record(shape, spacing_t, isos, views)
        squeeze = hu.ndim == 3
        return {name: (img[0] if squeeze else img) for name, img in zip(names, images, strict=True)}

    def render(
        self,
        hu: torch.Tensor,
        spacing: Sequence[float],
        isocenter_mm: Sequence[float] | np.ndarray | torch.Tensor | None = None,
        views: Sequence[ViewSpec] = DEFAULT_VIEWS,
    ) -> torch.Tensor:
        """Render ``views`` of a HU volume.

        Args:
            hu: (D, H, W) or (B, D, H, W) float tensor in HU, canonical axes.
            spacing: voxel size (s_D, s_H, s_W) in mm.
            isocenter_mm: (3,) or (B, 3) mm in the volume frame (index * spacing); None = volume centre.
            views: the views to render (default: AP "xray1" and lateral "xray2" at 90 degrees).
        Returns:
            float tensor (V, R, C) or (B, V, R, C) on hu's device, differentiable w.r.t. hu: line integrals
            ``sum mu dl`` (physical, dimensionless, >= 0) or Slicer brightness in [0, 1] (slicer mode).
        """
        rendered = self.render_views(hu, spacing, isocenter_mm, views)
        names = list(rendered)
        images = [img if hu.ndim == 4 else img.unsqueeze(0) for img in rendered.values()]
        stacked = stack_views(images, names)
        return stacked if hu.ndim == 4 else stacked[0]

    def to_uint8(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Rendered images (..., R, C) -> uint8 radiographs, bone bright; physical mode windows each image by
        ``display_percentiles`` (or the fixed ``display_window``), slicer mode scales [0, 1] by 255."""
        if self.cfg.mode == "slicer":
            return unit_to_uint8(images)
        return window_to_uint8(
            images, self.cfg.display_percentiles, self.cfg.display_window, self.cfg.display_object_fraction
        )

    def _record(
        self,
        shape: tuple[int, int, int],
        spacing: tuple[float, float, float],
        isos: np.ndarray,
        views: tuple[ViewSpec, ...],
    ) -> None:
        cfg = self.cfg
        last: dict[str, float | int | str] = {}
        if np.all(isos == isos[:1]):
            for axis, value in zip("dhw", isos[0], strict=True):
                last[f"isocenter_{axis}_mm"] = float(value)
        for view in views:
            layout = detector_layout(view, shape, spacing, cfg.detector_shape, cfg.detector_pitch_mm)
            last[f"{view.name}_angle_deg"] = float(view.angle_deg)
            last[f"{view.name}_lateral"] = int(view.lateral)
            last[f"{view.name}_rows"] = layout.rows
            last[f"{view.name}_cols"] = layout.cols
            last[f"{view.name}_iso_pitch_row_mm"] = layout.pitch_row_mm
            last[f"{view.name}_iso_pitch_col_mm"] = layout.pitch_col_mm
            last[f"{view.name}_detector_pixel_row_mm"] = layout.pitch_row_mm * cfg.magnification
            last[f"{view.name}_detector_pixel_col_mm"] = layout.pitch_col_mm * cfg.magnification
        self._last = last

    def geometry_attrs(self) -> dict[str, float | int | str | None]:
        """Flat str/float/int provenance for HDF5 attributes: the config (None for an unset option, which
        :mod:`x2ct.io.hdf5` stores and reads back as None), and after a render the isocentre and each view's
        detector grid (``<name>_rows``, ``<name>_iso_pitch_row_mm``, ...)."""
        attrs: dict[str, float | int | str | None] = {
            "drr_units": self._units(),
            "magnification": self.cfg.magnification,
        }
        for name, value in asdict(self.cfg).items():
            if value is None:
                attrs[name] = None
            elif isinstance(value, tuple | list):
                for suffix, item in zip(PAIR_SUFFIXES.get(name, ("low", "high")), value, strict=True):
                    attrs[f"{name}_{suffix}"] = item if isinstance(item, int) else float(item)
            elif isinstance(value, bool | int | float | str):
                attrs[name] = value
        attrs.update(self._last)
        return attrs

    def _units(self) -> str:
        if self.cfg.mode == "physical":
            return "line integral of mu (dimensionless)"
        return "slicer brightness 1 - exp(-integral kappa) in [0, 1]"
