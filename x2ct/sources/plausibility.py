"""Guards against plausible-looking wrong geometry in a loaded case: a voxel size in the wrong unit, and
vertebra labels whose physical size is no vertebra's (spacing in cm or m, a binary whole-spine mask).

The CT's values are checked by :mod:`x2ct.io.ct_units`; the file-level checks (shape and affine of CT and mask,
label ids, empty mask, NaN) live in :mod:`x2ct.io.nifti`.
"""

from __future__ import annotations

import numpy as np

from x2ct.errors import CaseError
from x2ct.io.labels import level_names
from x2ct.io.volume import Volume

#: Smallest plausible CT voxel edge (mm): clinical CT reaches about 0.2 mm; a spacing written in metres
#: (0.0007) or a factor-1000 scaling error lands below.
VOXEL_SIZE_MIN_MM: float = 0.05
#: Largest plausible CT voxel edge (mm): thick slices are at most 10 mm; a spacing in micrometres lands above.
VOXEL_SIZE_MAX_MM: float = 20.0
#: Smallest plausible volume (mL) of the largest vertebra label: a cervical vertebra is about 5 mL, a lumbar one
#: about 50-100 mL; a spacing in cm (1000x too small a volume) gives at most about 0.1 mL.
LEVEL_VOLUME_MIN_ML: float = 0.5
#: Largest plausible volume (mL) of one vertebra label (L5 is about 100 mL): a binary mask labelling the whole
#: spine with one id (about 1000 mL thoracolumbar) or a spacing 10x too large lands above.
LEVEL_VOLUME_MAX_ML: float = 500.0
MM3_PER_ML: float = 1000.0


def check_case_geometry(vol: Volume, where: str) -> None:
    """Raise :class:`CaseError` (naming ``where``, the value and the bound) when the voxel size or the size of
    the vertebrae is implausible for a spine CT in millimetres.

    Args:
        vol: a loaded canonical volume with its labels (project numbering, 0 = background).
        where: the CT file or case, for the message.
    """
    spacing = np.asarray(vol.spacing, dtype=np.float64)
    shown = " x ".join(f"{s:.4g}" for s in spacing)
    if spacing.min() < VOXEL_SIZE_MIN_MM or spacing.max() > VOXEL_SIZE_MAX_MM:
        raise CaseError(
            f"CT {where}: voxel size {shown} mm is outside {VOXEL_SIZE_MIN_MM:g}..{VOXEL_SIZE_MAX_MM:g} mm "
            "(the NIfTI spacing in another unit than mm?)"
        )
    if vol.labels is None:
        return
    counts = np.bincount(vol.labels.reshape(-1).astype(np.int64, copy=False))
    counts[0] = 0
    if not counts.any():
        return  # an empty mask is the loader's error
    largest = int(np.argmax(counts))
    volume_ml = float(counts[largest] * np.prod(spacing) / MM3_PER_ML)
    name = level_names([largest])[0]
    if volume_ml < LEVEL_VOLUME_MIN_ML:
        raise CaseError(
            f"CT {where}: the largest vertebra label ({name}) covers {volume_ml:.3g} mL, less than "
            f"{LEVEL_VOLUME_MIN_ML:g} mL (a real vertebra is 5-100 mL) at voxel size {shown} mm: spacing in cm?"
        )
    if volume_ml > LEVEL_VOLUME_MAX_ML:
        raise CaseError(
            f"CT {where}: vertebra label {name} covers {volume_ml:.4g} mL, more than {LEVEL_VOLUME_MAX_ML:g} mL "
            f"(a real vertebra is 5-100 mL) at voxel size {shown} mm: a binary mask of the whole spine (the mask "
            "must number each vertebra), or a spacing in the wrong unit?"
        )
