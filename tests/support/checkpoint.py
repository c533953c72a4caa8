"""A tiny trained X2CT-GAN checkpoint with its triplets, as x2ct-train and x2ct-prepare leave them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import lightning as L
import numpy as np

from tests.support.networks import TINY_CUBE, TINY_DISCRIMINATOR, TINY_RAY_LIFTING, tiny_gan_module
from tests.support.volumes import write_tiny_triplets
from x2ct.data.datamodule import X2CTDataModule
from x2ct.drr.geometry import volume_centre_mm
from x2ct.models.gan_module import X2CTGANModule

# The triplets' voxel size: a 32^3 cube at 4 mm covers 128 mm like the paper's 128^3 at 1 mm.
TINY_SPACING_MM = (4.0, 4.0, 4.0)
# The cone-beam geometry recorded in the ray-lifting checkpoint's triplets (the renderer's default SOD).
TINY_TRAINING_SOD_MM = 850.0


@dataclass(frozen=True)
class TinyCheckpoint:
    """A checkpoint file and what it was trained on (read-only: copy the file before changing it)."""

    path: Path
    triplets: Path
    cube: int
    spacing_mm: tuple[float, float, float]
    n_train: int
    n_test: int


def write_tiny_checkpoint(folder: Path, n_train: int = 2, n_test: int = 3) -> TinyCheckpoint:
    """Fit the tiny X2CT-GAN for one step on tiny triplets under ``folder / "triplets"`` (which record
    ``spacing_mm`` and ``xray_mode="aligned"`` like x2ct-prepare's) and save ``folder / "tiny.ckpt"`` with the
    data-module settings."""
    root = write_tiny_triplets(folder / "triplets", n_train=n_train, n_test=n_test, cube=TINY_CUBE)
    _record_attributes(root, {"xray_mode": "aligned", "spacing_mm": np.asarray(TINY_SPACING_MM)})
    path = _fit_and_save(tiny_gan_module(), root, folder, "tiny.ckpt")
    return TinyCheckpoint(path, root, TINY_CUBE, TINY_SPACING_MM, n_train, n_test)


def write_tiny_ray_lifting_checkpoint(folder: Path, n_train: int = 2, n_test: int = 1) -> TinyCheckpoint:
    """Like :func:`write_tiny_checkpoint` with the tiny ray-lifting generator and the ray-conditioned
    discriminator; the triplets also record a cone-beam DRR geometry (SOD ``TINY_TRAINING_SOD_MM``, isocentre at
    the volume centre, default detector), so the training geometry can be rebuilt from them."""
    root = write_tiny_triplets(folder / "triplets", n_train=n_train, n_test=n_test, cube=TINY_CUBE)
    iso = volume_centre_mm((TINY_CUBE,) * 3, TINY_SPACING_MM)
    attrs = {
        "xray_mode": "aligned",
        "spacing_mm": np.asarray(TINY_SPACING_MM),
        "isocenter_mm": iso,
        "drr.geometry": "cone",
        "drr.sod_mm": TINY_TRAINING_SOD_MM,
    }
    _record_attributes(root, attrs)
    generator = {"_target_": "x2ct.models.RayLiftingGenerator", "cube": TINY_CUBE, "encoder_convs": 1}
    discriminator = {"_target_": "x2ct.models.PatchDiscriminator3D", "conditioning": "rays", **TINY_DISCRIMINATOR}
    module = X2CTGANModule(
        generator={**generator, **{k: list(v) for k, v in TINY_RAY_LIFTING.items()}},
        discriminator=discriminator,
        val_ssim=False,
    )
    path = _fit_and_save(module, root, folder, "tiny_ray_lifting.ckpt")
    return TinyCheckpoint(path, root, TINY_CUBE, TINY_SPACING_MM, n_train, n_test)


def _record_attributes(root: Path, attrs: dict[str, object]) -> None:
    """Add ``attrs`` to every triplet under ``root`` (as x2ct-prepare records them)."""
    for triplet in sorted(root.glob("*/ct_xray_data.h5")):
        with h5py.File(triplet, "a") as h5:
            for name, value in attrs.items():
                h5.attrs[name] = value


def _fit_and_save(module: L.LightningModule, root: Path, folder: Path, name: str) -> Path:
    """One training step of ``module`` on the triplets under ``root``; the checkpoint ``folder / name``."""
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
    trainer.fit(module, datamodule=X2CTDataModule(root, cube=TINY_CUBE, val_fraction=0.0))
    path = folder / name
    trainer.save_checkpoint(path)
    return path
