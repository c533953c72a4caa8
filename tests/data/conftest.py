"""Fixtures of the data tests: a prepared folder whose triplets record their DRR geometry, and a clean slate for
the projection module's once-per-process warnings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from x2ct.drr import DRRConfig, projection
from x2ct.io.hdf5 import HU_OFFSET, TRIPLET_FILENAME, read_triplet
from x2ct.io.volume import Volume, canonical_affine
from x2ct.preparation.fit import VolumeFitConfig
from x2ct.preparation.pipeline import PrepareSettings, XraySettings, run_prepare
from x2ct.sources.base import CaseRef, CaseSource

GEOMETRY_CUBE = 24
GEOMETRY_SPACING_MM = (5.0, 4.0, 4.5)  # anisotropic: a swapped axis shows
GEOMETRY_ANGLES = (90.0, 85.0)
AIR_HU, MARKER_HU, LABEL = -1000.0, 3000.0, 20
LABEL_BLOCK = 6  # voxels per side of the labelled block
MARKER_HALF = 0.5  # the centre of a 2^3 block starting at voxel i is at i + 0.5
FIT_MARGIN_MM = 1000.0  # keeps the whole volume in the fit's crop
SOD_MM, SID_MM = 300.0, 400.0  # short: the cone differs clearly from a parallel beam
DISPLAY_WINDOW = (0.0, 1.0)  # fixed line-integral window: the marker is the brightest pixel of every view


@dataclass(frozen=True)
class GeometryCase:
    """One prepared case: its id, DRR geometry, isocentre (mm) and the centre of its bright 2^3-voxel marker in
    (fractional) voxel indices (D, H, W)."""

    case_id: str
    geometry: str
    iso_mm: tuple[float, float, float]
    marker: tuple[float, float, float]


@dataclass(frozen=True)
class GeometryFolder:
    """A prepared folder (``train.txt`` lists every case, ``test.txt`` the last one) written by the pipeline's
    own ``run_prepare``, so its files carry the attributes ``x2ct-prepare`` records. CTs are ``cube``^3
    at ``spacing_mm``; views are xray1 and the laterals at ``angles``, stored at the CT's size."""

    root: Path
    cases: list[GeometryCase]
    cube: int = GEOMETRY_CUBE
    spacing_mm: tuple[float, float, float] = GEOMETRY_SPACING_MM
    sod_mm: float = SOD_MM
    angles: tuple[float, ...] = GEOMETRY_ANGLES


class _MarkerSource(CaseSource):
    """Serves ready-made volumes to the preparation pipeline."""

    name = "markers"

    def __init__(self, volumes: list[Volume]) -> None:
        self.volumes = {volume.case_id: volume for volume in volumes}

    def list_cases(self) -> list[CaseRef]:
        return [CaseRef(case_id, None, None) for case_id in sorted(self.volumes)]

    def load(self, ref: CaseRef) -> Volume:
        return self.volumes[ref.case_id]


def _marker_volume(case_id: str, marker: tuple[int, int, int], label_corner: tuple[int, int, int]) -> Volume:
    """Air with a dense 2^3-voxel marker and a labelled (air-valued) 'vertebra' that sets the isocentre: a block
    at ``label_corner`` plus the mirror images of its corner voxels, so that the mask's bounding box is centred and
    the pipeline's fit leaves the volume where it is while the isocentre (the mask's centroid) is off-centre."""
    hu = np.full((GEOMETRY_CUBE,) * 3, AIR_HU, dtype=np.float32)
    d, h, w = marker
    hu[d : d + 2, h : h + 2, w : w + 2] = MARKER_HU
    labels = np.zeros(hu.shape, dtype=np.int16)
    labels[tuple(slice(c, c + LABEL_BLOCK) for c in label_corner)] = LABEL
    for offset in (0, LABEL_BLOCK - 1):  # mirror images of the block's first and last voxels
        labels[tuple(GEOMETRY_CUBE - 1 - c - offset for c in label_corner)] = LABEL
    return Volume(hu, labels, GEOMETRY_SPACING_MM, canonical_affine(GEOMETRY_SPACING_MM), case_id)


@pytest.fixture(scope="session")
def geometry_folder(tmp_path_factory: pytest.TempPathFactory) -> GeometryFolder:
    root = tmp_path_factory.mktemp("geometry_triplets")
    settings = PrepareSettings(out_dir=root, lateral_angles=GEOMETRY_ANGLES, workers=1, n_previews=0)
    fit = VolumeFitConfig(margin_mm=FIT_MARGIN_MM, spacing_mm=GEOMETRY_SPACING_MM, cube=GEOMETRY_CUBE)
    xray = XraySettings(mode="aligned", size=GEOMETRY_CUBE)
    layouts = {
        "cone": [("cone_a", (5, 16, 6), (12, 3, 14)), ("cone_c", (18, 9, 15), (3, 12, 2))],
        "parallel": [("parallel_b", (15, 6, 17), (2, 13, 5))],
    }
    cases = []
    for geometry, specs in layouts.items():
        volumes = [_marker_volume(case_id, marker, corner) for case_id, marker, corner in specs]
        drr = DRRConfig(geometry=geometry, sod_mm=SOD_MM, sid_mm=SID_MM, display_window=DISPLAY_WINDOW)
        summary = run_prepare(_MarkerSource(volumes), fit, drr, xray, settings, progress=False)
        assert not summary.failed, summary.failed
        for volume, (case_id, marker, _) in zip(volumes, specs, strict=True):
            stored = read_triplet(root / case_id / TRIPLET_FILENAME).ct_hu_plus_1024 - HU_OFFSET
            assert np.array_equal(stored, volume.hu), f"{case_id}: the fit moved the volume"
            iso = tuple(float(v) for v in volume.mask_centroid_mm())
            cases.append(GeometryCase(case_id, geometry, iso, tuple(float(i) + MARKER_HALF for i in marker)))
    (root / "train.txt").write_text("".join(f"{c.case_id}\n" for c in cases))
    (root / "test.txt").write_text(f"{cases[-1].case_id}\n")
    return GeometryFolder(root, cases)


@pytest.fixture
def fresh_projection_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which once-per-process warnings :mod:`x2ct.drr.projection` has already logged."""
    monkeypatch.setattr(projection, "_logged_once", set())
