"""MediaLogger: PNG files with a CSV logger, W&B images offline and disabled, the module contract, rank/sanity."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from x2ct.callbacks import MediaLogger, extract_samples
from x2ct.callbacks.media import safe_name
from x2ct.data.normalization import CTWindow
from x2ct.viz import DISPLAY_HU_WINDOW, triplanar_figure

SIZE = 16
N_CASES = 3


class TinyCases(Dataset):
    """N_CASES cases of SIZE^3: a CT in [0, 1] with a bright block whose position depends on the case, and its
    mean projections as the two X-rays."""

    def __len__(self) -> int:
        return N_CASES

    def __getitem__(self, index: int) -> dict:
        ct = torch.full((1, SIZE, SIZE, SIZE), 0.1)
        ct[:, 2 + 3 * index : 6 + 3 * index, 4:10, 5:9] = 0.8
        return {"ct": ct, "xray1": ct.mean(dim=2), "xray2": ct.mean(dim=3), "case_id": f"case/{index:03d}"}


class TinyGAN(pl.LightningModule):
    """A one-layer 3D conv 'generator': xray1 broadcast along H -> conv -> sigmoid (N, 1, D, H, W) in [0, 1]."""

    def __init__(self, return_fake: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, kernel_size=3, padding=1)
        self.return_fake = return_fake

    def forward(self, xray1: torch.Tensor) -> torch.Tensor:
        volume = xray1.unsqueeze(2).expand(-1, -1, SIZE, -1, -1)  # (N, 1, S, S) -> (N, 1, D, H, W)
        return torch.sigmoid(self.conv(volume))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return nn.functional.mse_loss(self(batch["xray1"]), batch["ct"])

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        fake = self(batch["xray1"])
        loss = nn.functional.mse_loss(fake, batch["ct"])
        return {"fake": fake, "loss": loss} if self.return_fake else {"loss": loss}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> DataLoader:
    return DataLoader(TinyCases(), batch_size=N_CASES, shuffle=False)


def fit(module: pl.LightningModule, logger, callback: MediaLogger, root: Path, max_epochs: int = 1) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=logger,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(module, train_dataloaders=loader(), val_dataloaders=loader())
    return trainer


def test_csv_logger_gets_pngs_of_the_first_samples(tmp_path: Path) -> None:
    module = TinyGAN()
    trainer = fit(module, CSVLogger(tmp_path), MediaLogger(max_samples=2), tmp_path)
    media = tmp_path / "lightning_logs" / "version_0" / "media" / "epoch_000"
    assert sorted(p.name for p in media.iterdir()) == [
        "case_000_reprojection.png",
        "case_000_triplanar.png",
        "case_001_reprojection.png",
        "case_001_triplanar.png",
    ]
    # The PNG is the figure of that case's real CT and the trained module's prediction.
    case = TinyCases()[1]
    with torch.no_grad():
        fake = module(case["xray1"][None])[0]
    expected = triplanar_figure(case["ct"], fake, suptitle=f"case/001  epoch 0  step {trainer.global_step}")
    np.testing.assert_array_equal(np.asarray(Image.open(media / "case_001_triplanar.png").convert("RGB")), expected)


class TinyDataModule(pl.LightningDataModule):
    """TinyCases behind a data module whose CT window is not the default one (as X2CTDataModule's ``window``)."""

    window = CTWindow(-1000.0, 1000.0)

    def train_dataloader(self) -> DataLoader:
        return loader()

    def val_dataloader(self) -> DataLoader:
        return loader()


def test_figures_read_the_ct_through_the_data_module_window(tmp_path: Path) -> None:
    module = TinyGAN()
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        logger=False,
        callbacks=[MediaLogger(max_samples=1, hu_window=DISPLAY_HU_WINDOW)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(module, datamodule=TinyDataModule())
    case = TinyCases()[0]
    with torch.no_grad():
        fake = module(case["xray1"][None])[0]
    title = f"case/000  epoch 0  step {trainer.global_step}"
    expected = triplanar_figure(
        case["ct"], fake, hu_window=DISPLAY_HU_WINDOW, suptitle=title, ct_window_hu=(-1000, 1000)
    )
    written = np.asarray(Image.open(tmp_path / "media" / "epoch_000" / "case_000_triplanar.png").convert("RGB"))
    np.testing.assert_array_equal(written, expected)


def test_every_n_epochs_logs_only_due_epochs(tmp_path: Path) -> None:
    fit(TinyGAN(), CSVLogger(tmp_path), MediaLogger(every_n_epochs=2, max_samples=1), tmp_path, max_epochs=3)
    media = tmp_path / "lightning_logs" / "version_0" / "media"
    assert sorted(p.name for p in media.iterdir()) == ["epoch_001"]
    assert len(list((media / "epoch_001").iterdir())) == 2


def test_module_without_fake_output_gets_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="validation_step to return a dict with key 'fake'"):
        fit(TinyGAN(return_fake=False), CSVLogger(tmp_path), MediaLogger(), tmp_path)


def test_wandb_offline_run_stores_the_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    try:
        logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="x2ct-test")
        fit(TinyGAN(), logger, MediaLogger(max_samples=1), tmp_path)
    finally:
        wandb.finish()
        wandb.teardown()  # the wandb singleton caches WANDB_MODE: reset it for later tests
    images = {str(p.parent).split("/media/images/")[1]: p for p in tmp_path.glob("wandb/offline-run-*/files/**/*.png")}
    assert sorted(images) == ["val/reprojection", "val/triplanar"], images
    # The first logger is W&B, so the PNG files go under its save_dir; W&B holds the same pixels.
    png = tmp_path / "media" / "epoch_000" / "case_000_triplanar.png"
    np.testing.assert_array_equal(
        np.asarray(Image.open(images["val/triplanar"]).convert("RGB")), np.asarray(Image.open(png).convert("RGB"))
    )


def test_wandb_disabled_does_not_break_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "disabled")
    try:
        fit(TinyGAN(), WandbLogger(save_dir=str(tmp_path)), MediaLogger(max_samples=1), tmp_path)
    finally:
        wandb.finish()
        wandb.teardown()
    assert (tmp_path / "media" / "epoch_000" / "case_000_reprojection.png").is_file()
    assert not list(tmp_path.glob("wandb/*run-*"))


def fake_trainer(tmp_path: Path, sanity_checking: bool, is_global_zero: bool) -> SimpleNamespace:
    return SimpleNamespace(
        sanity_checking=sanity_checking,
        is_global_zero=is_global_zero,
        current_epoch=0,
        global_step=0,
        loggers=[],
        log_dir=str(tmp_path),
        default_root_dir=str(tmp_path),
    )


@pytest.mark.parametrize(("sanity_checking", "is_global_zero"), [(True, True), (False, False)])
def test_sanity_check_and_other_ranks_write_nothing(
    tmp_path: Path, sanity_checking: bool, is_global_zero: bool
) -> None:
    batch = next(iter(loader()))
    outputs = {"fake": batch["ct"] * 0.5}
    callback = MediaLogger()
    trainer = fake_trainer(tmp_path, sanity_checking, is_global_zero)
    callback.on_validation_epoch_start(trainer, None)
    callback.on_validation_batch_end(trainer, None, outputs, batch, 0)
    callback.on_validation_epoch_end(trainer, None)
    assert not (tmp_path / "media").exists()
    # The same calls on rank 0 outside the sanity check write the files.
    trainer = fake_trainer(tmp_path, sanity_checking=False, is_global_zero=True)
    callback.on_validation_batch_end(trainer, None, outputs, batch, 0)
    callback.on_validation_epoch_end(trainer, None)
    assert len(list((tmp_path / "media" / "epoch_000").iterdir())) == 4


def test_extract_samples_checks_the_contract() -> None:
    batch = next(iter(loader()))
    samples = extract_samples({"fake": batch["ct"] * 0.5}, batch, max_samples=5)
    assert [s.case_id for s in samples] == ["case/000", "case/001", "case/002"]
    assert samples[2].real.shape == (SIZE, SIZE, SIZE) and samples[2].xray2.shape == (SIZE, SIZE)
    np.testing.assert_allclose(samples[2].fake, batch["ct"][2, 0].numpy() * 0.5)
    with pytest.raises(ValueError, match="shaped like batch"):
        extract_samples({"fake": batch["ct"][:, 0]}, batch, 1)
    with pytest.raises(ValueError, match="returned Tensor"):
        extract_samples(batch["ct"], batch, 1)
    with pytest.raises(ValueError, match="case_id"):
        extract_samples({"fake": batch["ct"]}, {k: v for k, v in batch.items() if k != "case_id"}, 1)
    with pytest.raises(ValueError, match="max_samples"):
        MediaLogger(max_samples=0)
    assert safe_name("verse/sub-004 ct") == "verse_sub-004_ct"


def test_hydra_config_instantiates_the_callback() -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from x2ct.config_dir import CONFIG_DIR

    cfg = OmegaConf.load(Path(CONFIG_DIR) / "callbacks" / "media.yaml")
    assert list(cfg) == ["media"]
    callback = instantiate(cfg.media, every_n_epochs=3, hu_window=[-500, 1500])
    assert isinstance(callback, MediaLogger)
    assert (callback.every_n_epochs, callback.max_samples, callback.log_dir_figures) == (3, 2, True)
    assert callback.hu_window == (-500.0, 1500.0) and callback.drr is None
    drr_config = {"_target_": "x2ct.drr.DRRConfig", "geometry": "parallel"}
    drr_cfg = {"_target_": "x2ct.viz.DRRSpec", "config": drr_config, "spacing_mm": [2, 2, 2]}
    drr = instantiate(cfg.media, drr=drr_cfg).drr
    assert drr.spacing_mm == (2.0, 2.0, 2.0) and drr.config.geometry == "parallel"
