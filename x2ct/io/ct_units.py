"""Are a CT's values Hounsfield units? Detect it from the value distribution and convert the common
"HU + 1024" storage.

Many exported volumes store CT values as 0..4095 without a rescale intercept (HU + 1024: air near 0, water
1024), others are normalised to [0, 1]. Prepared as if they were HU, soft tissue becomes about 1064 HU and every
rendered X-ray is wrong, with no error. Two statistics tell them apart (both measured on at most
:data:`MAX_SAMPLES` evenly strided voxels, so a 512^3 CT costs well under a second):

* the *dark level*: the :data:`DARK_PERCENTILE` percentile of the CT, scanner padding excluded (voxels at the
  minimum when that minimum lies below :data:`PADDING_BELOW_HU`). In HU the darkest voxels are air (-1000) or,
  in a volume cropped to the body, fat (-100), so the dark level is at most :data:`DARK_LEVEL_MAX_HU`. Values
  stored as HU + 1024 never go below 0 (apart from padding), nor do normalised ones.
* the *bone level*: the :data:`BONE_PERCENTILE` percentile of the CT inside the vertebra mask. Cortical bone is
  several hundred HU, so a real vertebra gives at least :data:`BONE_LEVEL_MIN_HU`; soft tissue (a mask of
  another scan or a shifted mask) gives about 50 HU, normalised values at most a few units.

``ct_units`` (the ``source.ct_units`` option of the dataset-folder sources) says what to do:

* ``"hu"`` (default): the values must look like HU; otherwise the case fails with a reason naming the option
  that would convert it.
* ``"hu_plus_1024"``: subtract 1024, then the values must look like HU.
* ``"auto"``: keep values that look like HU, subtract 1024 from values that look like HU only after it, fail
  otherwise.
* ``"hu_unchecked"``: keep the values and skip both checks (for an unusual CT the checks misjudge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from x2ct.errors import CaseError

CT_UNITS_HU = "hu"
CT_UNITS_HU_PLUS_1024 = "hu_plus_1024"
CT_UNITS_AUTO = "auto"
CT_UNITS_UNCHECKED = "hu_unchecked"
#: Accepted values of the ``ct_units`` option.
CT_UNITS: tuple[str, ...] = (CT_UNITS_HU, CT_UNITS_HU_PLUS_1024, CT_UNITS_AUTO, CT_UNITS_UNCHECKED)
#: Offset of the "HU + 1024" storage (0..4095 without a rescale intercept: stored = HU + 1024).
HU_PLUS_1024_OFFSET: float = 1024.0
#: Manifest / meta value of a CT whose stored values were converted from HU + 1024.
CONVERTED_FROM_HU_PLUS_1024 = "hu_plus_1024->hu"

#: Percentile (in %) of the CT taken as its dark level: 2 % of a spine CT is air (lungs, outside the body) or, in
#: a volume cropped to the body, fat; it is well above a thin ring of interpolated padding (< 1 % of a slice).
DARK_PERCENTILE: float = 2.0
#: A HU CT's dark level is air (about -1000) or fat (about -100); -50 HU leaves room for noise and lean patients,
#: while "HU + 1024" (air about 24, fat about 924) and normalised values are never below 0.
DARK_LEVEL_MAX_HU: float = -50.0
#: A minimum below this (HU) is scanner padding (-2000, -2048, -3024 or raw -2000), not air (-1000 to -1024):
#: voxels at that minimum are left out of the dark level, so raw data padded with -2000 does not pass as HU.
PADDING_BELOW_HU: float = -1100.0
#: Percentile (in %) of the CT inside the vertebra mask taken as its bone level (the cortex and posterior
#: elements, dense in every vertebra, osteoporotic ones included).
BONE_PERCENTILE: float = 90.0
#: A vertebra's bone level is several hundred HU; soft tissue is 0-80 HU. Below 150 HU the mask covers no bone.
BONE_LEVEL_MIN_HU: float = 150.0
#: Largest value (in any unit) of a CT that looks normalised (to [0, 1] or [-1, 1]): used for the hint only.
NORMALISED_MAX: float = 1.0
#: Voxels sampled (evenly strided) for the statistics.
MAX_SAMPLES: int = 2_000_000


@dataclass(frozen=True)
class CTValueStats:
    """What the checks measure on a CT (in its stored units).

    Attributes:
        minimum, maximum: extreme values of the whole CT.
        dark_level: :data:`DARK_PERCENTILE` percentile of the sampled voxels, padding excluded.
        bone_level: :data:`BONE_PERCENTILE` percentile inside the vertebra mask (NaN without mask voxels).
        padding_excluded: whether voxels at the minimum were left out as scanner padding.
    """

    minimum: float
    maximum: float
    dark_level: float
    bone_level: float
    padding_excluded: bool

    def units_problem(self) -> str | None:
        """Why these values are not in HU (one clause), or None when their dark level is air or fat."""
        if self.dark_level <= DARK_LEVEL_MAX_HU:
            return None
        padding = f", padding at {self.minimum:g} left out" if self.padding_excluded else ""
        return (
            f"its darkest {DARK_PERCENTILE:g} % lie at {self.dark_level:.0f}{padding} (values "
            f"{self.minimum:g}..{self.maximum:g}), where a HU CT has air (-1000) or fat (-100), at most "
            f"{DARK_LEVEL_MAX_HU:g}"
        )

    def bone_problem(self) -> str | None:
        """Why the vertebra mask does not lie on bone of this HU CT (one clause), or None when it does."""
        if self.bone_level >= BONE_LEVEL_MIN_HU:
            return None
        return (
            f"the vertebra mask covers no bone: the {BONE_PERCENTILE:g}th percentile of the CT inside it is "
            f"{self.bone_level:.0f}, below {BONE_LEVEL_MIN_HU:g} HU (a mask of another scan, or a shifted mask?)"
        )

    @property
    def looks_like_hu(self) -> bool:
        return self.units_problem() is None and self.bone_problem() is None


def _strided(values: np.ndarray) -> np.ndarray:
    step = max(1, math.ceil(values.size / MAX_SAMPLES))
    return values[::step]


def _measure(all_samples: np.ndarray, bone_samples: np.ndarray, minimum: float, maximum: float) -> CTValueStats:
    padding_excluded = minimum < PADDING_BELOW_HU
    dark = all_samples[all_samples != minimum] if padding_excluded else all_samples
    dark_level = float(np.percentile(dark, DARK_PERCENTILE)) if dark.size else minimum
    bone_level = float(np.percentile(bone_samples, BONE_PERCENTILE)) if bone_samples.size else math.nan
    return CTValueStats(minimum, maximum, dark_level, bone_level, padding_excluded)


def ct_value_stats(ct: np.ndarray, labels: np.ndarray, offset: float = 0.0) -> CTValueStats:
    """The statistics of ``ct + offset`` (without building that array).

    Args:
        ct: CT values (D, H, W) in their stored units.
        labels: vertebra mask on the same grid (> 0 = vertebra).
        offset: added to every value (``-1024`` measures the "HU + 1024" reading).
    """
    flat = np.asarray(ct).reshape(-1)
    samples = _strided(flat).astype(np.float64) + offset
    bone = _strided(flat[np.asarray(labels).reshape(-1) > 0]).astype(np.float64) + offset
    return _measure(samples, bone, float(flat.min()) + offset, float(flat.max()) + offset)


def _hint(ct: np.ndarray, labels: np.ndarray, stats: CTValueStats) -> str:
    if ct_value_stats(ct, labels, -HU_PLUS_1024_OFFSET).looks_like_hu:
        return (
            f"it looks like HU + {HU_PLUS_1024_OFFSET:g} (air near 0, stored without a rescale intercept): "
            f"set source.ct_units={CT_UNITS_HU_PLUS_1024} (or {CT_UNITS_AUTO}) to convert it"
        )
    if stats.maximum <= NORMALISED_MAX:
        return "the values look normalised (at most 1): give the CT in HU"
    return f"give the CT in HU, or set source.ct_units={CT_UNITS_UNCHECKED} to skip this check"


def to_hu(ct: np.ndarray, labels: np.ndarray, ct_units: str, where: str) -> tuple[np.ndarray, str, CTValueStats | None]:
    """The CT in HU according to ``ct_units`` (see the module docstring), checked against its vertebra mask.

    Args:
        ct: float32 CT (D, H, W) as stored (after the NIfTI scaling).
        labels: vertebra mask (D, H, W), > 0 = vertebra.
        ct_units: one of :data:`CT_UNITS`.
        where: the CT file or case, for the error message.
    Returns:
        (float32 HU array (D, H, W), the units decision for the manifest: ``"hu"``,
        :data:`CONVERTED_FROM_HU_PLUS_1024` or ``"hu_unchecked"``, the statistics of the returned HU values or
        None when unchecked).
    Raises:
        CaseError: the values do not look like HU, or the mask covers no bone (naming the measured levels and
            the option that would help).
        ValueError: an unknown ``ct_units``.
    """
    if ct_units not in CT_UNITS:
        raise ValueError(f"ct_units must be one of {CT_UNITS}, got {ct_units!r}")
    if ct_units == CT_UNITS_UNCHECKED:
        return ct, CT_UNITS_UNCHECKED, None
    offset = -HU_PLUS_1024_OFFSET if ct_units == CT_UNITS_HU_PLUS_1024 else 0.0
    stats = ct_value_stats(ct, labels, offset)
    if ct_units == CT_UNITS_AUTO and not stats.looks_like_hu:
        shifted = ct_value_stats(ct, labels, -HU_PLUS_1024_OFFSET)
        if shifted.looks_like_hu:
            offset, stats = -HU_PLUS_1024_OFFSET, shifted
    problem = stats.units_problem() or stats.bone_problem()
    if problem is not None:
        if ct_units == CT_UNITS_HU_PLUS_1024:
            raise CaseError(
                f"CT {where}: after subtracting {HU_PLUS_1024_OFFSET:g} (source.ct_units={CT_UNITS_HU_PLUS_1024}) "
                f"{problem}; is it already in HU (source.ct_units={CT_UNITS_HU})?"
            )
        if stats.units_problem() is None:  # HU values, but the mask lies elsewhere
            raise CaseError(f"CT {where}: {problem}; source.ct_units={CT_UNITS_UNCHECKED} skips this check")
        if ct_units == CT_UNITS_AUTO:
            raise CaseError(
                f"CT {where}: values are neither HU nor HU + {HU_PLUS_1024_OFFSET:g} "
                f"(source.ct_units={CT_UNITS_AUTO}): {problem}"
            )
        raise CaseError(f"CT {where}: values are not HU: {problem}; {_hint(ct, labels, stats)}")
    if offset == 0.0:
        return ct, CT_UNITS_HU, stats
    return (ct + np.float32(offset)).astype(np.float32, copy=False), CONVERTED_FROM_HU_PLUS_1024, stats
