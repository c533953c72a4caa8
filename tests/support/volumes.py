"""Tiny prepared data: HDF5 triplet folders as x2ct-prepare writes them, and CT / mask NIfTI pairs."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from x2ct.io.hdf5 import write_triplet

AIR_HU, SOFT_TISSUE_HU, BONE_HU = -1000.0, 40.0, 900.0
DISPLAY_HU_LOW, DISPLAY_HU_WIDTH = -1000.0, 2000.0
UINT8_MAX = 255


def _mean_projection(hu: np.ndarray, axis: int) -> np.ndarray:
    """uint8 image of the mean HU along ``axis``, -1000..1000 HU -> 0..255."""
    return np.clip((hu.mean(axis=axis) - DISPLAY_HU_LOW) / DISPLAY_HU_WIDTH * UINT8_MAX, 0, UINT8_MAX).astype(np.uint8)


def write_tiny_triplets(root: Path, n_train: int = 4, n_test: int = 2, cube: int = 32, seed: int = 0) -> Path:
    """A prepared-dataset folder of synthetic (cube^3) cases ``case00``, ``case01``, ...: a soft-tissue block with
    a bright 'spine' column whose (H, W) position varies per case, and aligned mean-projection X-rays (xray1 along
    H, xray2 along W); ``train.txt`` lists the first ``n_train`` cases, ``test.txt`` the others. No spacing_mm or
    xray_mode attributes (official X2CT files carry none)."""
    rng = np.random.default_rng(seed)
    ids = [f"case{i:02d}" for i in range(n_train + n_test)]
    for case_id in ids:
        hu = np.full((cube, cube, cube), AIR_HU, np.float32)
        hu[:, cube // 4 : 3 * cube // 4, cube // 4 : 3 * cube // 4] = SOFT_TISSUE_HU
        h0, w0 = rng.integers(cube // 4, cube // 2, size=2)
        hu[2:-2, h0 : h0 + cube // 6, w0 : w0 + cube // 6] = BONE_HU
        (root / case_id).mkdir(parents=True, exist_ok=True)
        write_triplet(
            root / case_id / "ct_xray_data.h5",
            ct_hu=hu,
            xray1=_mean_projection(hu, axis=1),
            laterals={90.0: _mean_projection(hu, axis=2)},
        )
    (root / "train.txt").write_text("".join(f"{i}\n" for i in ids[:n_train]))
    (root / "test.txt").write_text("".join(f"{i}\n" for i in ids[n_train:]))
    return root


def write_nifti_pair(
    folder: Path,
    stem: str,
    hu: np.ndarray,
    labels: np.ndarray,
    affine: np.ndarray,
    ct_suffix: str = "_ct.nii.gz",
    mask_suffix: str = "_seg.nii.gz",
) -> tuple[Path, Path]:
    """Write a CT (int16 HU) and its mask (uint8) as NIfTI files named ``<stem><suffix>`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ct_path = folder / f"{stem}{ct_suffix}"
    mask_path = folder / f"{stem}{mask_suffix}"
    nib.save(nib.Nifti1Image(np.asarray(hu, dtype=np.int16), affine), ct_path)
    nib.save(nib.Nifti1Image(np.asarray(labels, dtype=np.uint8), affine), mask_path)
    return ct_path, mask_path
