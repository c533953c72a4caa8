"""A tiny trained X2CT-GAN checkpoint with its triplets, as x2ct-train and x2ct-prepare leave them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import lightning as L
import numpy as np

from tests.support.networks import TINY_CUBE, tiny_gan_module
from tests.support.volumes import write_tiny_triplets
from x2ct.data.datamodule import X2CTDataModule

# The triplets' voxel size: a 32^3 cube at 4 mm covers 128 mm like the paper's 128^3 at 1 mm.
TINY_SPACING_MM = (4.0, 4.0, 4.0)


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
    for triplet in sorted(root.glob("*/ct_xray_data.h5")):
        with h5py.File(triplet, "a") as h5:
            h5.attrs["xray_mode"] = "aligned"
            h5.attrs["spacing_mm"] = np.asarray(TINY_SPACING_MM)
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
    trainer.fit(tiny_gan_module(), datamodule=X2CTDataModule(root, cube=TINY_CUBE, val_fraction=0.0))
    path = folder / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return TinyCheckpoint(path, root, TINY_CUBE, TINY_SPACING_MM, n_train, n_test)
