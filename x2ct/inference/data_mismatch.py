"""Warnings when a model is evaluated or used on data unlike its training data.

A model sees its training data's voxel size, CT grid and X-ray geometry (X-ray mode, DRR mode, beam, SID / SOD,
lateral angles) implicitly; data that differ in any of them run without error but give silently worse volumes (a
model trained at 4 mm evaluated at 2 mm on another grid: PSNR-3D 12.8). :func:`data_mismatches` lists each
difference in one line naming both values; :func:`warn_data_mismatches` logs each once for one evaluation or
prediction run (``x2ct-eval``: :mod:`x2ct.evaluation.loop`; ``x2ct-predict``: :mod:`x2ct.inference.predictor`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py

from x2ct.data.normalization import resampled_spacing
from x2ct.io.hdf5 import TRIPLET_FILENAME, read_spacing

if TYPE_CHECKING:
    from x2ct.data.datamodule import X2CTDataModule
    from x2ct.inference.checkpoint import LoadedCheckpoint

log = logging.getLogger(__name__)

RELATIVE_TOLERANCE = 1e-3  # spacings and distances closer than this (relative) count as equal
ANGLE_TOLERANCE_DEG = 1e-6
DRR_PREFIX = "drr."
XRAY_MODE_ATTRIBUTE = "xray_mode"
# (attribute, what it is) of the X-ray geometry compared as text or as a distance in mm.
TEXT_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    (XRAY_MODE_ATTRIBUTE, "X-ray mode"),
    (DRR_PREFIX + "mode", "DRR mode"),
    (DRR_PREFIX + "geometry", "beam geometry"),
)
DISTANCE_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    (DRR_PREFIX + "sid_mm", "source-detector distance (SID)"),
    (DRR_PREFIX + "sod_mm", "source-isocentre distance (SOD)"),
)
NONE_STRINGS = ("", "none", "None")


@dataclass(frozen=True)
class DataDescription:
    """What shapes a model's input, as far as it is known (None = unknown, not compared).

    Attributes:
        source: where it was read from (a triplet file, an option, a checkpoint), named in the warnings.
        spacing_mm: voxel size (D, H, W) in mm on the model's ``cube`` grid.
        grid: the stored CT's shape (D, H, W) in voxels.
        attrs: X-ray mode and DRR geometry (``xray_mode``, ``drr.mode``, ``drr.geometry``, ``drr.sid_mm``,
            ``drr.sod_mm``), only those known.
        lateral_angles: ``(low, high)`` degrees of the lateral views used (training: the angle range).
    """

    source: str
    spacing_mm: tuple[float, float, float] | None = None
    grid: tuple[int, int, int] | None = None
    attrs: dict[str, Any] | None = None
    lateral_angles: tuple[float, float] | None = None


def describe_triplet(path: Path, cube: int, lateral_angles: Sequence[float] | None = None) -> DataDescription:
    """Voxel size on the ``cube`` grid, stored grid and X-ray geometry of one triplet file (attributes only)."""
    stored, shape = read_spacing(path)
    with h5py.File(path, "r") as h5:
        attrs = {
            name: _plain(h5.attrs[name]) for name, _ in (*TEXT_ATTRIBUTES, *DISTANCE_ATTRIBUTES) if name in h5.attrs
        }
    spacing = None if stored is None else tuple(float(s) for s in resampled_spacing(stored, shape, cube))
    angles = None if lateral_angles is None else (float(min(lateral_angles)), float(max(lateral_angles)))
    return DataDescription(str(path), spacing, shape, attrs, angles)  # type: ignore[arg-type]


def data_mismatches(trained: DataDescription, used: DataDescription) -> list[str]:
    """One line per difference between the training data and the data in use, naming both values."""
    lines: list[str] = []
    where = f"(used: {used.source}; training: {trained.source})"
    if trained.spacing_mm and used.spacing_mm and not _close(trained.spacing_mm, used.spacing_mm):
        lines.append(
            f"voxel size {_mm(used.spacing_mm)} differs from the training data's {_mm(trained.spacing_mm)} {where}"
        )
    if trained.grid and used.grid and tuple(trained.grid) != tuple(used.grid):
        lines.append(f"CT grid {_grid(used.grid)} differs from the training data's {_grid(trained.grid)} {where}")
    known, given = trained.attrs or {}, used.attrs or {}
    for name, what in TEXT_ATTRIBUTES:
        if _known(known.get(name)) and _known(given.get(name)) and str(known[name]) != str(given[name]):
            lines.append(f"{what} {given[name]!r} differs from the training data's {known[name]!r} {where}")
    for name, what in DISTANCE_ATTRIBUTES:
        if _known(known.get(name)) and _known(given.get(name)) and not _close([known[name]], [given[name]]):
            lines.append(
                f"{what} {float(given[name]):g} mm differs from the training data's {float(known[name]):g} mm {where}"
            )
    if trained.lateral_angles and used.lateral_angles:
        low, high = trained.lateral_angles
        outside = [a for a in used.lateral_angles if not low - ANGLE_TOLERANCE_DEG <= a <= high + ANGLE_TOLERANCE_DEG]
        if outside:
            trained_text = f"{low:g}" if low == high else f"{low:g}-{high:g}"
            lines.append(
                f"lateral angle {outside[0]:g} degrees lies outside the training angles "
                f"({trained_text} degrees) {where}"
            )
    return lines


def warn_data_mismatches(trained: DataDescription | None, used: DataDescription | None) -> list[str]:
    """Log each of :func:`data_mismatches` once as a warning (nothing when either side is unknown); returns them."""
    if trained is None or used is None:
        return []
    lines = data_mismatches(trained, used)
    for line in lines:
        log.warning("data unlike the training data: %s", line)
    return lines


# ------------------------------------------------------------------------------------- the two sides
def training_description(loaded: LoadedCheckpoint) -> DataDescription | None:
    """The training data of a loaded model: its first reachable training triplet, else what the model records
    (exported folder: voxel size and X-ray mode); the angle range from the data module's settings."""
    params = loaded.datamodule_params
    angle_range = params.get("train_lateral_angles") or [loaded.data.lateral_angle] * 2
    triplet = _first_training_triplet(loaded)
    if triplet is not None:
        try:
            return describe_triplet(triplet, loaded.data.cube, angle_range)
        except (OSError, ValueError) as error:  # unreadable training file: described as far as the model says
            log.info("cannot read training triplet %s for the data comparison: %s", triplet, error)
    info = loaded.training_data()
    if info is None:
        return DataDescription(str(loaded.path), lateral_angles=(float(min(angle_range)), float(max(angle_range))))
    attrs = {XRAY_MODE_ATTRIBUTE: info.xray_mode} if info.xray_mode else {}
    return DataDescription(str(info.source), info.spacing_mm, None, attrs, (min(angle_range), max(angle_range)))


def evaluation_description(datamodule: X2CTDataModule) -> DataDescription | None:
    """The first test case of ``datamodule`` at its lateral angle, or None when it cannot be read (the
    evaluation then reports the problem itself)."""
    try:
        case_id = datamodule.test_ids[0]
        path = datamodule.root / case_id / TRIPLET_FILENAME
        return describe_triplet(path, datamodule.cube, [datamodule.lateral_angle] * 2)
    except (OSError, ValueError):
        return None


def prediction_description(
    spacing_mm: Sequence[float],
    source: str,
    sid_mm: float | None = None,
    sod_mm: float | None = None,
    lateral_angle: float | None = None,
) -> DataDescription:
    """What ``x2ct-predict`` was told (``source`` names it): the output voxel size and the ``geometry.*`` options
    given; what was not given is not compared."""
    attrs = {DRR_PREFIX + "sid_mm": sid_mm, DRR_PREFIX + "sod_mm": sod_mm}
    return DataDescription(
        source,
        spacing_mm=tuple(float(s) for s in spacing_mm),  # type: ignore[arg-type]
        attrs={k: v for k, v in attrs.items() if v is not None},
        lateral_angles=None if lateral_angle is None else (float(lateral_angle), float(lateral_angle)),
    )


# ---------------------------------------------------------------------------------------------- helpers
def _first_training_triplet(loaded: LoadedCheckpoint) -> Path | None:
    from x2ct.data.datamodule import read_case_list

    if loaded.data.data_root is None:
        return None
    root = Path(loaded.data.data_root)
    try:
        case_ids = read_case_list(root / loaded.data.train_list)
    except (OSError, ValueError):
        return None
    return next((root / c / TRIPLET_FILENAME for c in case_ids if (root / c / TRIPLET_FILENAME).is_file()), None)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if hasattr(value, "item") else value


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value in NONE_STRINGS)


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(math.isclose(float(x), float(y), rel_tol=RELATIVE_TOLERANCE) for x, y in zip(a, b, strict=True))


def _mm(spacing: Sequence[float]) -> str:
    return "x".join(f"{s:g}" for s in spacing) + " mm"


def _grid(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape) + " voxels"
