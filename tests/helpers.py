"""Small builders shared by tests (tiny volumes, NIfTI pairs, composed configs)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from x2ct.config_dir import CONFIG_DIR

# Small but complete preparation settings for tests: a 32^3 cube at 4 mm covers 128 mm like the real 128^3 at 1 mm.
TINY_OVERRIDES = ["volume.cube=32", "volume.spacing_mm=[4.0,4.0,4.0]", "drr.n_samples=64", "workers=1", "n_previews=1"]


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<name>.yaml`` with Hydra overrides, as the command line would."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def write_nifti_pair(
    folder: Path,
    stem: str,
    hu: np.ndarray,
    labels: np.ndarray,
    affine: np.ndarray,
    ct_suffix: str = "_ct.nii.gz",
    mask_suffix: str = "_seg.nii.gz",
) -> tuple[Path, Path]:
    """Write a CT (int16 HU) and its mask (uint8) as NIfTI files named ``<stem><suffix>``."""
    folder.mkdir(parents=True, exist_ok=True)
    ct_path = folder / f"{stem}{ct_suffix}"
    mask_path = folder / f"{stem}{mask_suffix}"
    nib.save(nib.Nifti1Image(np.asarray(hu, dtype=np.int16), affine), ct_path)
    nib.save(nib.Nifti1Image(np.asarray(labels, dtype=np.uint8), affine), mask_path)
    return ct_path, mask_path
