"""The mean-volume baseline: predicts the average training CT whatever the X-rays show.

A reconstruction model is only useful if it beats this; ``make demo`` reports both on the test cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from x2ct.models.metric_tracker import ReconstructionMetrics

if TYPE_CHECKING:
    from x2ct.data.datamodule import X2CTDataModule


class MeanVolumeBaseline(L.LightningModule):
    """Test-time module whose prediction is the voxel-wise mean of the training volumes (1, 1, D, H, W) in [0, 1]."""

    def __init__(self, ssim: bool = True) -> None:
        super().__init__()
        self.register_buffer("mean_volume", torch.zeros(0))
        self.eval_metrics = ReconstructionMetrics(ssim=ssim)

    @torch.no_grad()
    def fit_mean(self, batches: Iterable[Mapping[str, Any]]) -> MeanVolumeBaseline:
        """Average the ``ct`` of every batch (N, 1, D, H, W); raises ValueError when there is none."""
        total, count = None, 0
        for batch in batches:
            ct = batch["ct"].double()
            total = ct.sum(dim=0, keepdim=True) if total is None else total + ct.sum(dim=0, keepdim=True)
            count += ct.shape[0]
        if total is None:
            raise ValueError("no training volumes to average for the mean-volume baseline")
        self.mean_volume = (total / count).float()
        return self

    def fit_training_mean(self, datamodule: X2CTDataModule) -> MeanVolumeBaseline:
        """Average the training CTs of ``datamodule`` as they are stored, without the data module's augmentation
        (a flipped CT is not a training CT): the same settings and split, ``augment=None``."""
        plain = type(datamodule)(**{**datamodule.hparams, "augment": None, "num_workers": 0})
        plain.setup("fit")
        return self.fit_mean(DataLoader(plain.train_set, batch_size=1))

    def forward(self, xray1: torch.Tensor, xray2: torch.Tensor) -> torch.Tensor:
        if self.mean_volume.numel() == 0:
            raise RuntimeError("MeanVolumeBaseline.fit_mean must be called before predicting")
        return self.mean_volume.expand(xray1.shape[0], *self.mean_volume.shape[1:])

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        fake = self(batch["xray1"], batch["xray2"])
        self.eval_metrics.update(batch["ct"], fake)
        return {"fake": fake}

    def on_test_epoch_end(self) -> None:
        for name, value in self.eval_metrics.compute().items():
            self.log(f"test/{name}", value)
        self.eval_metrics.reset()
