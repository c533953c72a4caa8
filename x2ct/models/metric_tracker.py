"""Dataset means of per-volume reconstruction metrics, synchronized across processes by torchmetrics."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric

from x2ct.metrics import mae0, psnr3d_legacy, ssim3d


class ReconstructionMetrics(nn.Module):
    """Accumulates MAE0, legacy PSNR-3D and (optionally) 3D SSIM over volumes (N, 1, D, H, W) in [0, 1].

    ``compute()`` returns ``{"MAE0", "PSNR-3D", "SSIM-3D"}`` means over every volume seen on every process.
    """

    def __init__(self, ssim: bool = True) -> None:
        super().__init__()
        self.ssim = ssim
        self.mae0 = MeanMetric()
        self.psnr3d = MeanMetric()
        self.ssim3d = MeanMetric()

    def update(self, real: torch.Tensor, fake: torch.Tensor) -> None:
        self.mae0.update(mae0(real, fake))
        self.psnr3d.update(psnr3d_legacy(real, fake))
        if self.ssim:
            self.ssim3d.update(ssim3d(real, fake))

    def compute(self) -> dict[str, torch.Tensor]:
        values = {"MAE0": self.mae0.compute(), "PSNR-3D": self.psnr3d.compute()}
        if self.ssim:
            values["SSIM-3D"] = self.ssim3d.compute()
        return values

    def reset(self) -> None:
        for metric in (self.mae0, self.psnr3d, self.ssim3d):
            metric.reset()
