"""Builders for the inference tests: a tiny trained X2CT-GAN checkpoint and synthetic X-ray files."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import lightning as L
import numpy as np

from tests.io.test_xray_image import write_dicom
from tests.helpers import write_tiny_triplets
from tests.models.tiny import tiny_generator_kwargs
from x2ct.data.datamodule import X2CTDataModule
from x2ct.models.gan_module import X2CTGANModule

CUBE = 32
# The training triplets' voxel size: a 32^3 cube at 4 mm covers 128 mm like the paper's 128^3 at 1 mm.
TRAINING_SPACING_MM = (4.0, 4.0, 4.0)
UINT16_PER_UINT8 = 257  # 255 * 257 = 65535


def tiny_module() -> X2CTGANModule:
    generator = {"_target_": "x2ct.models.BiplanarGenerator", **tiny_generator_kwargs(CUBE)}
    discriminator = {"_target_": "x2ct.models.PatchDiscriminator3D", "base_channels": 4}
    return X2CTGANModule(generator=generator, discriminator=discriminator, val_ssim=False)


def write_tiny_checkpoint(
    folder: Path, spacing_mm: tuple[float, float, float] | None = TRAINING_SPACING_MM, n_test: int = 1
) -> Path:
    """Fit a 32^3 X2CT-GAN for one step on tiny triplets (which record ``spacing_mm`` and ``xray_mode`` like
    x2ct-prepare's, unless ``spacing_mm`` is None) and save a Lightning checkpoint with the data settings."""
    root = write_tiny_triplets(folder / "triplets", n_train=2, n_test=n_test, cube=CUBE)
    for triplet in sorted(root.glob("*/ct_xray_data.h5")):
        with h5py.File(triplet, "a") as h5:
            h5.attrs["xray_mode"] = "aligned"
            if spacing_mm is not None:
                h5.attrs["spacing_mm"] = np.asarray(spacing_mm)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=folder,
        max_steps=1,
        limit_val_batches=0,
    )
    trainer.fit(tiny_module(), datamodule=X2CTDataModule(root, cube=CUBE, val_fraction=0.0))
    path = folder / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


def synthetic_xray(rows: int = 80, cols: int = 60, lateral: bool = False, seed: int = 0) -> np.ndarray:
    """A uint8 radiograph-like image (bright = dense): dark air, a grey body, a bright vertical 'spine'."""
    rng = np.random.default_rng(seed)
    image = np.full((rows, cols), 15, np.uint8)
    image[4:-4, cols // 6 : -cols // 6] = 90
    spine = slice(cols // 2 - 4, cols // 2 + 4) if not lateral else slice(2 * cols // 3 - 4, 2 * cols // 3 + 4)
    image[6:-6, spine] = 210
    noise = rng.integers(0, 6, size=image.shape, dtype=np.uint8)
    return image + noise


def write_xray(path: Path, image: np.ndarray, kind: str) -> Path:
    """Write a uint8 image as ``png8``, ``png16`` (x 257, same picture) or ``dicom`` (uint16 MONOCHROME2)."""
    if kind == "png8":
        cv2.imwrite(str(path), image)
    elif kind == "png16":
        cv2.imwrite(str(path), image.astype(np.uint16) * UINT16_PER_UINT8)
    elif kind == "dicom":
        write_dicom(path, image.astype(np.uint16) * UINT16_PER_UINT8)
    else:
        raise ValueError(f"unknown image kind {kind!r}")
    return path


def write_xray_pair(folder: Path, kind: str = "png8") -> tuple[Path, Path]:
    """An AP and a lateral synthetic X-ray file of one kind."""
    suffix = ".dcm" if kind == "dicom" else ".png"
    folder.mkdir(parents=True, exist_ok=True)
    ap = write_xray(folder / f"ap_{kind}{suffix}", synthetic_xray(), kind)
    lateral = write_xray(folder / f"lateral_{kind}{suffix}", synthetic_xray(lateral=True, seed=1), kind)
    return ap, lateral
