"""Tiny marked cases (16^3) for the dataset and data-module tests: the writers and the constants their assertions read.

The one support module that test modules import directly: their assertions use ``CUBE``, ``ANGLES`` and
``lateral_value`` throughout, which fixtures would only obscure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from x2ct.io.hdf5 import TRIPLET_FILENAME, write_triplet

CUBE = 16
ANGLES = (90.0, 85.0)
MARKER_COLUMNS = 3  # columns 0..2 (patient's right) of the CT and of xray1 carry a bright marker


def lateral_value(angle: float) -> int:
    """The constant grey value written into the lateral view at ``angle`` (tells the angles apart)."""
    return int(angle) + 100


def make_case(index: int, cube: int = CUBE) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    """A tiny case: CT (HU) with an HU-0 body, a 1000-HU marker on the patient's right (low W) and a
    per-case value at voxel (0, 0, 0); xray1 with a matching marker; laterals constant per angle."""
    ct_hu = np.full((cube, cube, cube), -1000.0, dtype=np.float32)
    ct_hu[:, cube // 4 : 3 * cube // 4, :] = 0.0
    ct_hu[:, :, :MARKER_COLUMNS] = 1000.0
    ct_hu[0, 0, 0] = 10.0 * index
    xray1 = np.full((cube, cube), 40, dtype=np.uint8)
    xray1[:, :MARKER_COLUMNS] = 200
    laterals = {angle: np.full((cube, cube), lateral_value(angle), dtype=np.uint8) for angle in ANGLES}
    laterals[90.0][0, 0] = index  # tells cases apart in the lateral view too
    return ct_hu, xray1, laterals


def write_cases(root: Path, case_ids: Sequence[str], cube: int = CUBE) -> Path:
    """Write ``<root>/<case_id>/ct_xray_data.h5`` for each id; returns root."""
    for index, case_id in enumerate(case_ids):
        folder = root / case_id
        folder.mkdir(parents=True, exist_ok=True)
        ct_hu, xray1, laterals = make_case(index, cube)
        write_triplet(folder / TRIPLET_FILENAME, ct_hu, xray1, laterals, attrs={"case_id": case_id})
    return root


def write_prepared_folder(root: Path, train: Sequence[str], test: Sequence[str], cube: int = CUBE) -> Path:
    """A prepared folder as ``x2ct-prepare`` leaves it: case files plus train.txt / test.txt."""
    write_cases(root, [*train, *test], cube)
    (root / "train.txt").write_text("".join(f"{c}\n" for c in train))
    (root / "test.txt").write_text("".join(f"{c}\n" for c in test))
    return root
