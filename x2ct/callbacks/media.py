"""Lightning callback that logs reconstruction figures of the first validation samples to W&B and as PNG files.

Contract with the LightningModule: ``validation_step`` returns a dict with key ``"fake"``, the generator output
(N, 1, D, H, W) on the model scale [0, 1]; the validation batch is a dict with ``"ct"`` (N, 1, D, H, W) in [0, 1],
``"xray1"`` (AP) and ``"xray2"`` (lateral) (N, 1, S, S) in [0, 1], and ``"case_id"`` (N strings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger

from x2ct.data.normalization import DEFAULT_CT_WINDOW_HU
from x2ct.viz.figures import DRRSpec, reprojection_figure, save_png, to_numpy, triplanar_figure

OUTPUT_KEY = "fake"
BATCH_KEYS: tuple[str, ...] = ("ct", "xray1", "xray2", "case_id")
MEDIA_SUBDIR = "media"
KEY_PREFIX = "val"
# Characters kept in case ids used as file names and W&B keys; anything else becomes "_".
UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class MediaSample:
    """One validation sample kept for the figures (float32 numpy on CPU, model scale [0, 1]).

    Attributes:
        case_id: the case identifier from the batch.
        real: (D, H, W) ground-truth CT. fake: (D, H, W) generator output.
        xray1: (S, S) AP input. xray2: (S, S) lateral input.
    """

    case_id: str
    real: np.ndarray
    fake: np.ndarray
    xray1: np.ndarray
    xray2: np.ndarray


def safe_name(case_id: str) -> str:
    """A case id usable as a file name and W&B key (unsafe characters replaced by ``_``)."""
    name = UNSAFE_NAME_CHARS.sub("_", str(case_id)).strip("._")
    if not name:
        raise ValueError(f"case id {case_id!r} has no usable characters for a file name")
    return name


def _case_ids(value: Any, n: int) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or len(value) != n:
        raise ValueError(f"batch['case_id'] must hold {n} case ids (one per sample), got {value!r}")
    return [str(v) for v in value]


def extract_samples(outputs: Any, batch: Any, max_samples: int) -> list[MediaSample]:
    """The first ``max_samples`` samples (0 = only check the contract) of a validation batch and the outputs.

    Raises ValueError when ``outputs`` is not a dict with ``"fake"``, when the batch misses a key, or when shapes
    disagree.
    """
    if not isinstance(outputs, Mapping) or OUTPUT_KEY not in outputs:
        got = f"a dict with keys {sorted(outputs)}" if isinstance(outputs, Mapping) else type(outputs).__name__
        raise ValueError(
            f"MediaLogger needs the LightningModule's validation_step to return a dict with key {OUTPUT_KEY!r} "
            f"holding the generator output (N, 1, D, H, W) in [0, 1]; it returned {got}"
        )
    if not isinstance(batch, Mapping) or any(key not in batch for key in BATCH_KEYS):
        got = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise ValueError(f"MediaLogger needs a validation batch dict with keys {list(BATCH_KEYS)}, got {got}")
    fake, real = outputs[OUTPUT_KEY], batch["ct"]
    if not isinstance(fake, torch.Tensor) or fake.ndim != 5 or tuple(fake.shape) != tuple(real.shape):
        shape = tuple(fake.shape) if isinstance(fake, torch.Tensor) else type(fake).__name__
        raise ValueError(
            f"validation_step output {OUTPUT_KEY!r} must be a tensor (N, 1, D, H, W) shaped like batch['ct'] "
            f"{tuple(real.shape)}, got {shape}"
        )
    n = min(int(fake.shape[0]), max_samples)
    case_ids = _case_ids(batch["case_id"], int(fake.shape[0]))
    return [
        MediaSample(
            case_id=case_ids[i],
            real=to_numpy(real[i], 3, f"batch['ct'][{i}]"),
            fake=to_numpy(fake[i], 3, f"outputs['fake'][{i}]"),
            xray1=to_numpy(batch["xray1"][i], 2, f"batch['xray1'][{i}]"),
            xray2=to_numpy(batch["xray2"][i], 2, f"batch['xray2'][{i}]"),
        )
        for i in range(n)
    ]


def model_ct_window(trainer: pl.Trainer) -> tuple[float, float]:
    """The HU window of the model's [0, 1] scale: the ``window`` of the trainer's data module (an
    :class:`~x2ct.data.datamodule.X2CTDataModule`), or the default window when there is none."""
    window = getattr(getattr(trainer, "datamodule", None), "window", None)
    if window is None:
        return DEFAULT_CT_WINDOW_HU
    return float(window.low_hu), float(window.high_hu)


class MediaLogger(Callback):
    """Logs tri-planar (real / fake / difference) and re-projection figures of the first validation samples.

    At the first validation batch of every ``every_n_epochs``-th epoch (epochs 1-based: with 5, after epochs
    5, 10, ...) it keeps ``max_samples`` samples; at the end of that validation epoch, on global rank 0 and never
    during the sanity check, it logs them to every :class:`WandbLogger` as images (keys
    ``val/triplanar/<case_id>`` and ``val/reprojection/<case_id>``, step = ``trainer.global_step``) and, when
    ``log_dir_figures``, writes ``<log_dir>/media/epoch_XXX/<case_id>_{triplanar,reprojection}.png`` (log_dir =
    ``trainer.log_dir``, or ``default_root_dir`` without one). The CT values are read in HU through the data
    module's window (:func:`model_ct_window`).

    Args:
        every_n_epochs: log every n-th validation epoch (>= 1).
        max_samples: samples per epoch taken from the first validation batch (>= 1).
        log_dir_figures: also write PNG files (what a CSV-logger user sees).
        hu_window: (low, high) HU display window of the CT slices; None shows the whole model range.
        drr: render real DRRs of the prediction in the re-projection figure (slower); None uses mean projections.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        max_samples: int = 2,
        log_dir_figures: bool = True,
        hu_window: Sequence[float] | None = None,
        drr: DRRSpec | None = None,
    ) -> None:
        super().__init__()
        if int(every_n_epochs) < 1:
            raise ValueError(f"MediaLogger every_n_epochs must be >= 1, got {every_n_epochs}")
        if int(max_samples) < 1:
            raise ValueError(f"MediaLogger max_samples must be >= 1, got {max_samples}")
        self.every_n_epochs = int(every_n_epochs)
        self.max_samples = int(max_samples)
        self.log_dir_figures = bool(log_dir_figures)
        self.hu_window = None if hu_window is None else tuple(float(v) for v in hu_window)
        self.drr = drr
        self._samples: list[MediaSample] = []

    def _due(self, trainer: pl.Trainer) -> bool:
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._samples = []

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or dataloader_idx != 0:
            return
        keep = self._due(trainer) and trainer.is_global_zero
        # Every rank checks the contract; only rank 0 copies samples to the CPU when they will be logged.
        samples = extract_samples(outputs, batch, self.max_samples if keep else 0)
        if keep:
            self._samples = samples

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            self._samples = []
            return
        # trainer.log_dir broadcasts from rank 0: every rank must call it.
        media_dir = self.media_dir(trainer) if self.log_dir_figures else None
        if not trainer.is_global_zero or not self._samples:
            return
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        ct_window = model_ct_window(trainer)
        for sample in self._samples:
            name = safe_name(sample.case_id)
            suptitle = f"{sample.case_id}  epoch {trainer.current_epoch}  step {trainer.global_step}"
            figures = {
                "triplanar": triplanar_figure(
                    sample.real, sample.fake, hu_window=self.hu_window, suptitle=suptitle, ct_window_hu=ct_window
                ),
                "reprojection": reprojection_figure(sample.xray1, sample.xray2, sample.fake, self.drr, suptitle),
            }
            for kind, rgb in figures.items():
                for logger in wandb_loggers:
                    logger.log_image(
                        key=f"{KEY_PREFIX}/{kind}/{name}", images=[rgb], step=trainer.global_step, caption=[suptitle]
                    )
                if media_dir is not None:
                    save_png(rgb, media_dir / f"{name}_{kind}.png")
        self._samples = []

    def media_dir(self, trainer: pl.Trainer) -> Path:
        """``<trainer.log_dir or default_root_dir>/media/epoch_XXX`` of the current epoch (call on every rank)."""
        root = trainer.log_dir or trainer.default_root_dir
        return Path(root) / MEDIA_SUBDIR / f"epoch_{trainer.current_epoch:03d}"
