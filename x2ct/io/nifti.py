"""Read CT + vertebra-mask NIfTI pairs into canonical :class:`~x2ct.io.volume.Volume` objects and write
volumes back to NIfTI.

Reading reorients every image by its affine to the project's canonical axes ``("I", "P", "L")`` (array
D, H, W; see :mod:`x2ct.io.volume`) with a pure axis permutation / flip (no interpolation). An oblique
affine is reoriented to its closest canonical axes and keeps its exact (oblique) affine; the obliquity is
recorded in ``meta["obliquity_deg"]``. Every problem with a case raises :class:`CaseError` naming the file.
"""

from __future__ import annotations

import errno
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from nibabel.affines import obliquity, voxel_sizes
from nibabel.orientations import (
    aff2axcodes,
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from x2ct.errors import CaseError
from x2ct.io.labels import level_names, to_project_labels
from x2ct.io.volume import CANONICAL_AXCODES, Volume

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
#: Largest allowed difference between the CT's and the mask's voxel-(0,0,0) world positions (mm).
DEFAULT_ORIGIN_TOL_MM: float = 1e-3
#: Largest allowed difference of the unit axis directions, and relative difference of the spacings.
DEFAULT_DIRECTION_TOL: float = 1e-4
#: Obliquity (degrees) above which a volume is flagged as oblique in its meta.
OBLIQUE_FLAG_DEG: float = 1e-3
_SINGULAR_DET: float = 1e-12
_INT16_MIN, _INT16_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max


def nifti_stem(path: str | Path) -> str:
    """File name without its ``.nii`` / ``.nii.gz`` suffix. Raises ValueError for other suffixes."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    raise ValueError(f"{path}: not a NIfTI file name (expected one of {NIFTI_SUFFIXES})")


@dataclass
class CanonicalImage:
    """A NIfTI image reoriented to canonical axes.

    Attributes:
        data: array (D, H, W) in canonical axes (as stored: the dtype after NIfTI scaling).
        affine: 4x4 canonical voxel -> RAS+ mm.
        path: the source file.
        original_shape: shape as stored in the file (after squeezing trailing singleton dims).
        original_affine: 4x4 affine of the stored array.
        original_axcodes: nibabel axis codes of the stored array (closest canonical axes).
        obliquity_deg: largest angle (degrees) between a voxel axis and its closest world axis.
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path
    original_shape: tuple[int, ...]
    original_affine: np.ndarray
    original_axcodes: tuple[str, str, str]
    obliquity_deg: float


def _unreachable_reason(path: Path) -> str:
    """Why ``path`` is not a readable file: a symlink loop, a broken symlink, a folder or no file at all."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f"{path} is a symlink loop"
        if path.is_symlink():
            return f"{path} is a broken symlink (its target {os.readlink(path)} does not exist)"
        return f"file not found: {path}"
    return f"{path} is not a file"


def _load_image(path: Path, what: str) -> nib.Nifti1Image:
    if not path.is_file():
        raise CaseError(f"{what} {_unreachable_reason(path)}")
    try:
        return nib.load(str(path), mmap=False)  # read into memory: no array tied to the file
    except Exception as exc:  # nibabel raises several types (ImageFileError, OSError, EOFError, ...)
        raise CaseError(f"cannot read {what} file {path}: {type(exc).__name__}: {exc}") from exc


def _squeeze_to_3d(data: np.ndarray, path: Path, what: str) -> np.ndarray:
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise CaseError(f"{what} file {path}: expected a 3D image, got shape {data.shape}")
    return data


def read_nifti_canonical(path: str | Path, what: str = "image", as_float32: bool = False) -> CanonicalImage:
    """Read a NIfTI file and reorient it to canonical ``("I", "P", "L")`` axes.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        what: word used in error messages ("CT", "mask").
        as_float32: read the scaled data as float32 (CT in HU); otherwise keep the stored/scaled dtype.
    Raises:
        CaseError: missing or unreadable file, not 3D, singular affine.
    """
    path = Path(path)
    image = _load_image(path, what)
    try:
        data = image.get_fdata(dtype=np.float32, caching="unchanged") if as_float32 else image.dataobj
        data = np.asanyarray(data)
    except Exception as exc:  # truncated or corrupt data block
        raise CaseError(f"cannot read the data of {what} file {path}: {type(exc).__name__}: {exc}") from exc
    data = _squeeze_to_3d(np.asarray(data), path, what)
    affine = np.asarray(image.affine, dtype=np.float64)
    if abs(np.linalg.det(affine[:3, :3])) < _SINGULAR_DET:
        raise CaseError(f"{what} file {path}: singular affine (zero voxel size?):\n{affine}")
    transform = ornt_transform(io_orientation(affine), axcodes2ornt(CANONICAL_AXCODES))
    canonical = np.ascontiguousarray(apply_orientation(data, transform))
    canonical_affine = affine @ inv_ornt_aff(transform, data.shape)
    return CanonicalImage(
        data=canonical,
        affine=canonical_affine,
        path=path,
        original_shape=tuple(int(n) for n in data.shape),
        original_affine=affine,
        original_axcodes=tuple(aff2axcodes(affine)),  # type: ignore[arg-type]
        obliquity_deg=float(np.degrees(np.max(np.abs(obliquity(affine))))),
    )


def _check_same_grid(ct: CanonicalImage, mask: CanonicalImage, origin_tol_mm: float, direction_tol: float) -> None:
    if ct.data.shape != mask.data.shape:
        raise CaseError(f"mask {mask.path} has shape {mask.data.shape} (canonical), CT {ct.path} has {ct.data.shape}")
    origin_diff = float(np.max(np.abs(ct.affine[:3, 3] - mask.affine[:3, 3])))
    ct_spacing, mask_spacing = voxel_sizes(ct.affine), voxel_sizes(mask.affine)
    direction_diff = float(np.max(np.abs(ct.affine[:3, :3] / ct_spacing - mask.affine[:3, :3] / mask_spacing)))
    spacing_diff = float(np.max(np.abs(ct_spacing - mask_spacing) / ct_spacing))
    if origin_diff > origin_tol_mm or direction_diff > direction_tol or spacing_diff > direction_tol:
        raise CaseError(
            f"affine of mask {mask.path} differs from CT {ct.path} (origin {origin_diff:.3g} mm, "
            f"direction {direction_diff:.3g}, relative spacing {spacing_diff:.3g}; tolerances {origin_tol_mm} mm, "
            f"{direction_tol}):\nCT\n{ct.affine}\nmask\n{mask.affine}"
        )


def _integer_labels(mask: CanonicalImage) -> np.ndarray:
    data = mask.data
    if np.issubdtype(data.dtype, np.integer):
        return data
    if np.issubdtype(data.dtype, np.bool_):
        return data.astype(np.int16)
    rounded = np.rint(data)
    if not np.array_equal(rounded, data):  # also catches NaN
        bad = data[rounded != data]
        raise CaseError(f"mask {mask.path} has non-integer values (e.g. {bad[:3].tolist()}); not a label map")
    return rounded.astype(np.int32)


def load_ct_and_mask(
    ct_path: str | Path,
    mask_path: str | Path,
    case_id: str | None = None,
    label_scheme: str = "ctspine1k",
    origin_tol_mm: float = DEFAULT_ORIGIN_TOL_MM,
    direction_tol: float = DEFAULT_DIRECTION_TOL,
) -> Volume:
    """Load a CT and its vertebra mask into a canonical :class:`Volume`.

    Args:
        ct_path, mask_path: NIfTI files (``.nii``/``.nii.gz``) on the same voxel grid.
        case_id: identifier; defaults to the CT file stem.
        label_scheme: numbering of the mask, see :func:`x2ct.io.labels.to_project_labels`.
        origin_tol_mm: allowed difference of the CT and mask voxel-(0,0,0) positions (mm).
        direction_tol: allowed difference of the unit axis directions and relative spacings.
    Returns:
        Volume with ``hu`` float32 (D, H, W) HU, ``labels`` int16 in project numbering, the canonical affine,
        the spacing (mm, D/H/W, column norms of that affine) and provenance in ``meta``.
    Raises:
        CaseError: missing/unreadable file, not 3D, shape or affine mismatch, NaN/inf in the CT,
            non-integer or unknown mask values, no vertebra in the mask.
    """
    case_id = case_id if case_id is not None else nifti_stem(ct_path)
    ct = read_nifti_canonical(ct_path, what="CT", as_float32=True)
    mask = read_nifti_canonical(mask_path, what="mask")
    _check_same_grid(ct, mask, origin_tol_mm, direction_tol)
    if not np.all(np.isfinite(ct.data)):
        n_bad = int(np.count_nonzero(~np.isfinite(ct.data)))
        raise CaseError(f"CT {ct.path} contains {n_bad} NaN/inf voxels")
    labels = to_project_labels(_integer_labels(mask), label_scheme, source=f"mask {mask.path}")
    present = np.unique(labels)
    present = present[present > 0]
    if present.size == 0:
        raise CaseError(f"mask {mask.path} contains no vertebra labels (label scheme {label_scheme!r})")
    spacing = tuple(float(s) for s in voxel_sizes(ct.affine))
    meta = {
        "ct_path": str(ct.path),
        "mask_path": str(mask.path),
        "label_scheme": label_scheme,
        "original_shape": list(ct.original_shape),
        "original_axcodes": "".join(ct.original_axcodes),
        "original_affine": ct.original_affine.tolist(),
        "original_spacing": [float(s) for s in voxel_sizes(ct.original_affine)],
        "obliquity_deg": ct.obliquity_deg,
        "oblique": ct.obliquity_deg > OBLIQUE_FLAG_DEG,
        "levels_present": level_names(present.tolist()),
    }
    return Volume(hu=ct.data, labels=labels, spacing=spacing, affine=ct.affine, case_id=case_id, meta=meta)


def _atomic_save(image: nib.Nifti1Image, path: Path) -> None:
    suffix = next(s for s in NIFTI_SUFFIXES if path.name.lower().endswith(s))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name[: -len(suffix)]}.{uuid.uuid4().hex}.tmp{suffix}"
    try:
        nib.save(image, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_volume_nifti(
    vol: Volume,
    path: str | Path,
    what: Literal["ct", "labels"] = "ct",
    ct_dtype: Literal["float32", "int16"] = "float32",
) -> Path:
    """Write the CT (HU) or the labels of ``vol`` to NIfTI with its canonical affine, atomically.

    Args:
        vol: the volume.
        path: target ``.nii`` or ``.nii.gz`` file; parent folders are created.
        what: ``"ct"`` writes ``vol.hu`` (HU), ``"labels"`` writes ``vol.labels`` as int16.
        ct_dtype: ``"float32"`` (exact) or ``"int16"`` (rounded, clipped to the int16 range) for the CT.
    Returns:
        The written path. The file is first written under a hidden temporary name in the same folder and
        then renamed, so no half-written file ever exists under ``path``.
    """
    path = Path(path)
    nifti_stem(path)  # validates the suffix
    if what == "ct":
        if ct_dtype == "float32":
            data = vol.hu.astype(np.float32, copy=False)
        elif ct_dtype == "int16":
            data = np.clip(np.rint(vol.hu), _INT16_MIN, _INT16_MAX).astype(np.int16)
        else:
            raise ValueError(f"ct_dtype must be 'float32' or 'int16', got {ct_dtype!r}")
    elif what == "labels":
        if vol.labels is None:
            raise ValueError(f"case {vol.case_id!r} has no labels to write to {path}")
        data = vol.labels.astype(np.int16, copy=False)
    else:
        raise ValueError(f"what must be 'ct' or 'labels', got {what!r}")
    image = nib.Nifti1Image(data, vol.affine)
    image.set_sform(vol.affine, code="scanner")
    image.set_qform(vol.affine, code="scanner")
    image.header.set_xyzt_units(xyz="mm")
    _atomic_save(image, path)
    return path
