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


def write_tiny_triplets(root: Path, n_train: int = 4, n_test: int = 2, cube: int = 32, seed: int = 0) -> Path:
    """A prepared-dataset folder of synthetic cases: a bright 'spine' box whose position varies per case, with
    aligned mean-projection X-rays; ``train.txt`` / ``test.txt`` list the cases."""
    from x2ct.io.hdf5 import write_triplet

    rng = np.random.default_rng(seed)
    ids = [f"case{i:02d}" for i in range(n_train + n_test)]
    for case_id in ids:
        hu = np.full((cube, cube, cube), -1000.0, np.float32)
        hu[:, cube // 4 : 3 * cube // 4, cube // 4 : 3 * cube // 4] = 40.0  # soft tissue
        h0, w0 = rng.integers(cube // 4, cube // 2, size=2)
        hu[2:-2, h0 : h0 + cube // 6, w0 : w0 + cube // 6] = 900.0  # bone column
        ap = np.clip((hu.mean(axis=1) + 1000) / 2000 * 255, 0, 255).astype(np.uint8)
        lateral = np.clip((hu.mean(axis=2) + 1000) / 2000 * 255, 0, 255).astype(np.uint8)
        (root / case_id).mkdir(parents=True, exist_ok=True)
        write_triplet(root / case_id / "ct_xray_data.h5", ct_hu=hu, xray1=ap, laterals={90.0: lateral})
    (root / "train.txt").write_text("".join(f"{i}\n" for i in ids[:n_train]))
    (root / "test.txt").write_text("".join(f"{i}\n" for i in ids[n_train:]))
    return root


# A 32^3 X2CT-GAN of the paper's topology with 3 dense blocks and few channels (training tests and smoke runs).
TINY_TRAIN_OVERRIDES = [
    "data.cube=32",
    "data.val_fraction=0.25",
    "model.generator.encoder_channels=8",
    "model.generator.growth_rate=4",
    "model.generator.bottleneck_channels=8",
    "model.generator.dense_layers=[1,1,1]",
    "model.generator.skip_channels=[4,4,4]",
    "model.generator.decoder_channels=[16,8,8,4]",
    "model.generator.view_decoder_convs=[1,1,1]",
    "model.generator.fused_decoder_convs=[1,1,1]",
    "model.discriminator.base_channels=4",
    "model.val_ssim=false",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
]


def compose_train_config(output_dir: Path, overrides: list[str]) -> DictConfig:
    """The ``train`` config as ``x2ct-train`` would see it, writing its outputs to ``output_dir``."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    HydraConfig().set_config(cfg)
    return cfg
