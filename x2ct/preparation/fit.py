"""Crop a canonical volume to its vertebrae, optionally keep chosen levels / mask the CT, resample it and fit
it into the network's cube.

Every step returns a new :class:`~x2ct.io.volume.Volume` whose affine is updated exactly: the RAS+ world
position of any voxel is preserved (crop and pad shift the origin, resampling scales the voxel axes). Inputs
are never modified in place.

Steps of :func:`fit_volume` (configured by :class:`VolumeFitConfig`):

1. crop to the bounding box of the mask plus ``margin_mm`` on each side, clamped to the array.
2. ``levels``: keep only the chosen vertebra levels (other labels -> 0; CaseError if none of them is present)
   and crop again to the kept levels' box plus margin, so the crop follows the kept levels.
3. ``mask_to_vertebrae``: set every non-vertebra voxel to ``pad_hu`` (the paper's segmented CT).
4. resample to ``spacing_mm``: linear for HU, nearest for labels (separable, first voxel centre kept).
5. fit into ``cube``: centred on the bounding box of the mask, padded with ``pad_hu`` / label 0. If the mask
   is longer than the cube along an axis, ``fit_mode="crop"`` centres that axis on ``focus_levels`` (or the
   mask) and crops; ``fit_mode="rescale"`` enlarges the spacing isotropically (before step 4, so the data is
   interpolated once) until the mask box plus margin fits.

What was done is recorded in ``vol.meta["fit"]`` (spacing used, rescale factor, crop start/shape, window
start, cropped axes, levels in input/output, ``levels_cut``: partly outside the cube, ``levels_lost``: entirely
outside it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from nibabel.affines import voxel_sizes

from x2ct.errors import CaseError
from x2ct.io.labels import level_names, parse_levels
from x2ct.io.volume import AIR_HU, Volume

FIT_MODES: tuple[str, ...] = ("crop", "rescale")
AXIS_NAMES: tuple[str, str, str] = ("D", "H", "W")
#: Tolerance (in voxels) when computing how many output samples fit into the input extent.
_GRID_EPS: float = 1e-6
#: Voxels added to the mask extent when choosing the rescale spacing (nearest-neighbour rounding at both ends).
_RESCALE_SLACK_VOXELS: int = 2


def _triple(value: float | int | Sequence[float] | Sequence[int], name: str) -> tuple[float, float, float]:
    values = [value] * 3 if isinstance(value, (int, float)) else list(value)
    if len(values) != 3:
        raise ValueError(f"{name} must be one number or three (D, H, W), got {value!r}")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def _levels_or_none(spec: str | Sequence[str] | None) -> str | list[str] | None:
    if spec is None or isinstance(spec, str):
        return spec
    return [str(item) for item in spec]


@dataclass
class VolumeFitConfig:
    """How a loaded volume becomes a network input cube.

    Attributes:
        margin_mm: CT context kept around the mask's bounding box when cropping (mm, >= 0).
        levels: vertebra levels to keep (``["L1", "L2"]``, ``"L1-L5"``); None keeps all.
        mask_to_vertebrae: set non-vertebra voxels to ``pad_hu`` (segmented CT as in the paper).
        spacing_mm: output voxel size (mm), one number or (D, H, W).
        cube: output shape, one int or (D, H, W).
        fit_mode: ``"crop"`` or ``"rescale"`` when the mask is longer than the cube.
        focus_levels: levels to centre on when ``fit_mode="crop"`` must crop (None: the mask centre).
        pad_hu: HU of padding and of masked-out voxels (air, -1000).
    """

    margin_mm: float = 10.0
    levels: str | Sequence[str] | None = None
    mask_to_vertebrae: bool = False
    spacing_mm: float | Sequence[float] = (1.0, 1.0, 1.0)
    cube: int | Sequence[int] = 128
    fit_mode: str = "crop"
    focus_levels: str | Sequence[str] | None = None
    pad_hu: float = AIR_HU
    level_ids: tuple[int, ...] | None = field(init=False, repr=False)
    focus_ids: tuple[int, ...] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.margin_mm >= 0:
            raise ValueError(f"margin_mm must be >= 0, got {self.margin_mm}")
        self.spacing_mm = _triple(self.spacing_mm, "spacing_mm")
        if min(self.spacing_mm) <= 0:
            raise ValueError(f"spacing_mm must be positive, got {self.spacing_mm}")
        cube = _triple(self.cube, "cube")
        if any(c != int(c) or c < 1 for c in cube):
            raise ValueError(f"cube must be positive integers, got {self.cube!r}")
        self.cube = tuple(int(c) for c in cube)
        if self.fit_mode not in FIT_MODES:
            raise ValueError(f"fit_mode must be one of {FIT_MODES}, got {self.fit_mode!r}")
        self.levels = _levels_or_none(self.levels)
        self.focus_levels = _levels_or_none(self.focus_levels)
        self.level_ids = parse_levels(self.levels)
        self.focus_ids = parse_levels(self.focus_levels)
        if self.level_ids and self.focus_ids and not set(self.focus_ids) <= set(self.level_ids):
            raise ValueError(f"focus_levels {self.focus_levels!r} are not all among levels {self.levels!r}")

    @property
    def cube_shape(self) -> tuple[int, int, int]:
        return self.cube  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.spacing_mm  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------- helpers


def _with_arrays(vol: Volume, hu: np.ndarray, labels: np.ndarray | None, affine: np.ndarray) -> Volume:
    spacing = tuple(float(s) for s in voxel_sizes(affine))
    return Volume(hu=hu, labels=labels, spacing=spacing, affine=affine, case_id=vol.case_id, meta=dict(vol.meta))


def _shifted_affine(affine: np.ndarray, start: Sequence[int]) -> np.ndarray:
    """Affine of a sub-grid whose voxel (0,0,0) is voxel ``start`` of the original grid."""
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ np.asarray(start, dtype=np.float64) + affine[:3, 3]
    return out


def _require_labels(vol: Volume) -> np.ndarray:
    if vol.labels is None:
        raise CaseError(f"case {vol.case_id!r}: no vertebra labels, cannot crop or fit to the mask")
    return vol.labels


def mask_bounding_box(labels: np.ndarray, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (low, high) voxel indices (3,) of the voxels with labels > 0 (or in ``ids``).
    Raises ValueError if there is none."""
    mask = labels > 0 if ids is None else np.isin(labels, np.asarray(ids))
    low, high = np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64)
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        if hit.size == 0:
            raise ValueError("no labelled voxel, no bounding box")
        low[axis], high[axis] = hit[0], hit[-1]
    return low, high


def _present_counts(labels: np.ndarray) -> dict[int, int]:
    counts = np.bincount(labels[labels > 0].ravel().astype(np.int64))
    return {int(i): int(c) for i, c in enumerate(counts) if c > 0}


# ---------------------------------------------------------------------------------------------------- steps


def keep_levels(vol: Volume, level_ids: Sequence[int]) -> Volume:
    """Zero every label not in ``level_ids``. Raises CaseError if none of them is present."""
    labels = _require_labels(vol)
    keep = np.isin(labels, np.asarray(level_ids))
    if not keep.any():
        present = level_names(np.unique(labels[labels > 0]).tolist())
        raise CaseError(
            f"case {vol.case_id!r}: none of the levels {level_names(level_ids)} is present (present: {present})"
        )
    return _with_arrays(vol, vol.hu, np.where(keep, labels, 0).astype(np.int16), vol.affine)


def crop_to_mask(vol: Volume, margin_mm: float) -> tuple[Volume, np.ndarray]:
    """Crop to the bounding box of labels > 0 plus ``margin_mm`` per side (clamped to the array).
    Returns the cropped volume (arrays are views) and the start index (3,) in ``vol``'s grid."""
    labels = _require_labels(vol)
    try:
        low, high = mask_bounding_box(labels)
    except ValueError:
        raise CaseError(f"case {vol.case_id!r}: empty vertebra mask, nothing to crop to") from None
    margin = np.array([math.ceil(margin_mm / s - _GRID_EPS) for s in vol.spacing], dtype=np.int64)
    start = np.maximum(low - margin, 0)
    stop = np.minimum(high + margin + 1, np.asarray(vol.shape))
    box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    return _with_arrays(vol, vol.hu[box], labels[box], _shifted_affine(vol.affine, start)), start


def mask_ct_to_vertebrae(vol: Volume, fill_hu: float = AIR_HU) -> Volume:
    """Set the HU of every voxel with label 0 to ``fill_hu`` (new array)."""
    labels = _require_labels(vol)
    hu = np.where(labels > 0, vol.hu, np.float32(fill_hu)).astype(np.float32, copy=False)
    return _with_arrays(vol, hu, labels, vol.affine)


def _sample_positions(n_in: int, step: float) -> np.ndarray:
    """Input coordinates (voxels) of the output samples 0, step, 2*step, ... inside [0, n_in - 1]."""
    n_out = math.floor((n_in - 1) / step + _GRID_EPS) + 1
    return np.arange(n_out, dtype=np.float64) * step


def _linear_along(array: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    n = array.shape[axis]
    if n == 1:
        return np.take(array, np.zeros(coords.shape, dtype=np.intp), axis=axis)
    low = np.clip(np.floor(coords).astype(np.intp), 0, n - 2)
    weight_shape = [1, 1, 1]
    weight_shape[axis] = -1
    weight = (coords - low).astype(np.float32).reshape(weight_shape)
    a0 = np.take(array, low, axis=axis)
    a1 = np.take(array, low + 1, axis=axis)
    a1 -= a0
    a1 *= weight
    a0 += a1
    return a0


def _nearest_along(array: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    index = np.clip(np.floor(coords + 0.5).astype(np.intp), 0, array.shape[axis] - 1)
    return np.take(array, index, axis=axis)


def resample_volume(vol: Volume, spacing_mm: Sequence[float]) -> Volume:
    """Resample to ``spacing_mm`` (D, H, W) mm: HU linear (float32), labels nearest.

    Output voxel ``j`` along an axis sits at input coordinate ``j * new / old`` (the first voxel centre is
    kept, all samples lie inside the input, so there is no extrapolation); the affine's voxel axes are
    scaled by ``new / old``, so world positions are exact.
    """
    steps = [float(t) / float(s) for t, s in zip(spacing_mm, vol.spacing, strict=True)]
    hu = vol.hu.astype(np.float32, copy=False)
    labels = vol.labels
    # shrink the axes with the largest reduction first: later passes then touch fewer voxels
    for axis in sorted(range(3), key=lambda a: -steps[a]):
        if abs(steps[axis] - 1.0) < _GRID_EPS:
            continue
        coords = _sample_positions(vol.shape[axis], steps[axis])
        hu = _linear_along(hu, axis, coords)
        if labels is not None:
            labels = _nearest_along(labels, axis, coords)
    affine = vol.affine.copy()
    affine[:3, :3] = vol.affine[:3, :3] * np.asarray(steps)[None, :]
    return _with_arrays(vol, np.ascontiguousarray(hu), None if labels is None else np.ascontiguousarray(labels), affine)


def _window(array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float | int) -> np.ndarray:
    """``array[start:start+size]`` per axis, padded with ``fill`` where the window leaves the array."""
    out = np.full(tuple(size), fill, dtype=array.dtype)
    src, dst = [], []
    for a0, n, n_in in zip(start, size, array.shape, strict=True):
        lo, hi = max(a0, 0), min(a0 + n, n_in)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - a0, hi - a0))
    out[tuple(dst)] = array[tuple(src)]
    return out


def centred_start(low: int, high: int, size: int) -> int:
    """Start index of a window of ``size`` voxels centred on the inclusive index range [low, high]."""
    return math.floor((low + high + 1 - size) / 2)


def rescale_factor_to_fit(vol: Volume, spacing_mm: Sequence[float], cube: Sequence[int], margin_mm: float) -> float:
    """Isotropic factor (>= 1) applied to ``spacing_mm`` so that the mask box plus ``margin_mm`` per side
    fits into ``cube`` after resampling (with a slack of a voxel per side for rounding)."""
    low, high = mask_bounding_box(_require_labels(vol))
    extent_mm = (high - low) * np.asarray(vol.spacing) + 2.0 * margin_mm
    usable = np.asarray(cube, dtype=np.float64) - _RESCALE_SLACK_VOXELS
    if np.any(usable <= 0):
        raise ValueError(f"cube {tuple(cube)} is too small to hold a mask")
    needed_spacing = extent_mm / usable
    return float(max(1.0, np.max(needed_spacing / np.asarray(spacing_mm))))


def place_in_cube(
    vol: Volume,
    cube: Sequence[int],
    pad_hu: float = AIR_HU,
    focus_ids: Sequence[int] | None = None,
) -> tuple[Volume, dict[str, Any]]:
    """Cut a ``cube``-shaped window centred on the mask's bounding box, padding with ``pad_hu``/label 0.

    Along an axis where the mask is longer than the cube, the window is centred on the bounding box of
    ``focus_ids`` (CaseError if none is present) or, without them, on the mask's, and the mask is cropped; the
    other axes are then centred on the part of the mask inside that window (a scoliotic spine stays centred).
    Returns the volume and a dict with ``window_start`` (index in ``vol``) and ``cropped_axes``.
    """
    labels = _require_labels(vol)
    low, high = mask_bounding_box(labels)
    cropped_axes = [AXIS_NAMES[a] for a in range(3) if high[a] - low[a] + 1 > cube[a]]
    if cropped_axes and focus_ids:
        try:
            focus_low, focus_high = mask_bounding_box(labels, focus_ids)
        except ValueError:
            present = level_names(np.unique(labels[labels > 0]).tolist())
            raise CaseError(
                f"case {vol.case_id!r}: focus levels {level_names(focus_ids)} are not present (present: {present})"
            ) from None
        for axis in range(3):
            if AXIS_NAMES[axis] in cropped_axes:
                low[axis], high[axis] = focus_low[axis], focus_high[axis]
    start = [centred_start(int(low[a]), int(high[a]), int(cube[a])) for a in range(3)]
    if cropped_axes:  # centre the other axes on the part of the mask that stays inside the window
        window = tuple(
            slice(max(start[a], 0), max(start[a] + int(cube[a]), 0)) if AXIS_NAMES[a] in cropped_axes else slice(None)
            for a in range(3)
        )
        kept = np.zeros_like(labels)
        kept[window] = labels[window]
        if np.any(kept > 0):
            kept_low, kept_high = mask_bounding_box(kept)
            for axis in range(3):
                if AXIS_NAMES[axis] not in cropped_axes:
                    start[axis] = centred_start(int(kept_low[axis]), int(kept_high[axis]), int(cube[axis]))
    hu = _window(vol.hu, start, cube, np.float32(pad_hu))
    out_labels = _window(labels, start, cube, 0)
    placed = _with_arrays(vol, hu, out_labels, _shifted_affine(vol.affine, start))
    return placed, {"window_start": start, "cropped_axes": cropped_axes}


# ---------------------------------------------------------------------------------------------- pipeline


def fit_volume(vol: Volume, cfg: VolumeFitConfig) -> Volume:
    """Crop / select levels / mask / resample / fit ``vol`` into a cube (see the module docstring).

    Returns:
        Volume of shape ``cfg.cube`` (D, H, W): ``hu`` float32 HU (padding ``cfg.pad_hu``), ``labels`` int16,
        ``spacing`` the spacing used (``cfg.spacing_mm``, times the rescale factor in rescale mode) and an
        exact affine. ``meta["fit"]`` records the steps.
    Raises:
        CaseError: no labels, asked levels or focus levels absent.
    """
    input_counts = _present_counts(_require_labels(vol))
    if not input_counts:
        raise CaseError(f"case {vol.case_id!r}: empty vertebra mask")
    current, crop_start = crop_to_mask(vol, cfg.margin_mm)
    if cfg.level_ids:  # select on the (smaller) crop, then crop again to the kept levels
        current, refined_start = crop_to_mask(keep_levels(current, cfg.level_ids), cfg.margin_mm)
        crop_start = crop_start + refined_start
    kept_counts = _present_counts(_require_labels(current))
    crop_shape = current.shape
    if cfg.mask_to_vertebrae:
        current = mask_ct_to_vertebrae(current, cfg.pad_hu)
    factor = 1.0
    if cfg.fit_mode == "rescale":
        factor = rescale_factor_to_fit(current, cfg.spacing, cfg.cube_shape, cfg.margin_mm)
    target_spacing = tuple(s * factor for s in cfg.spacing)
    current = resample_volume(current, target_spacing)
    resampled_shape = current.shape
    resampled_counts = _present_counts(_require_labels(current))
    current, placement = place_in_cube(current, cfg.cube_shape, cfg.pad_hu, cfg.focus_ids)
    out_counts = _present_counts(_require_labels(current))
    levels_cut = [i for i, n in resampled_counts.items() if 0 < out_counts.get(i, 0) < n]  # partly outside
    levels_lost = [i for i in kept_counts if i not in out_counts]
    current.meta["fit"] = {
        "fit_mode": cfg.fit_mode,
        "cube": list(cfg.cube_shape),
        "requested_spacing_mm": list(cfg.spacing),
        "spacing_mm": list(current.spacing),
        "rescale_factor": factor,
        "margin_mm": cfg.margin_mm,
        "levels_requested": None if cfg.level_ids is None else level_names(cfg.level_ids),
        "levels_in_input": level_names(input_counts),
        "levels_in_output": level_names(out_counts),
        "levels_cut": level_names(levels_cut),
        "levels_lost": level_names(levels_lost),
        "mask_to_vertebrae": cfg.mask_to_vertebrae,
        "pad_hu": cfg.pad_hu,
        "input_shape": list(vol.shape),
        "input_spacing_mm": list(vol.spacing),
        "crop_start": [int(i) for i in crop_start],
        "crop_shape": list(crop_shape),
        "resampled_shape": list(resampled_shape),
        "window_start": placement["window_start"],
        "cropped_axes": placement["cropped_axes"],
        "focus_levels": None if cfg.focus_ids is None else level_names(cfg.focus_ids),
    }
    return current
