"""The X2CT-GAN LightningModule: one forward, a generator step, then a discriminator step on the detached fake.

Batches are dicts from :class:`x2ct.data.datamodule.X2CTDataModule`: ``ct`` (N, 1, D, H, W) in [0, 1], ``xray1`` /
``xray2`` (N, 1, S, S) in [0, 1] and their projection matrices ``proj_xray1`` / ``proj_xray2`` (N, 3, 4), which are
passed to the networks that declare ``uses_geometry`` (the ray-lifting generator, the discriminator with
``conditioning="rays"``). The generator maps the two X-rays to a volume (N, 1, D, H, W) (ReLU output, clamped
to [0, 1] only for evaluation); the discriminator scores (volume, xray1, xray2) with a patch map.

Networks and optimizers are given as Hydra configs (``_target_`` dicts; optimizers as ``_partial_`` configs), so a
checkpoint holds everything needed to rebuild the model: ``X2CTGANModule.load_from_checkpoint(path)``. Every config
is built through the allow-list of :mod:`x2ct.models.allowed_targets` (the project's networks, a few torch
optimizers), and checkpoints are read with ``weights_only=True``: a crafted file cannot make loading run code.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Mapping
from os import PathLike
from typing import IO, Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from x2ct.models.allowed_targets import (
    DISCRIMINATOR,
    GENERATOR,
    OPTIMIZER,
    DisallowedTargetError,
    build_from_config,
    check_config,
    describe_unpickling_refusal,
)
from x2ct.models.init import init_weights
from x2ct.models.losses import LossWeights, discriminator_loss_terms, generator_loss_terms, point_loss_terms
from x2ct.models.metric_tracker import ReconstructionMetrics
from x2ct.models.point_sampling import PointSampling, sample_voxel_indices, values_at, voxel_centres

NONFINITE_POLICIES: tuple[str, ...] = ("raise", "skip")
PROJECTION_KEYS: tuple[str, str] = ("proj_xray1", "proj_xray2")
DEFAULT_ADAM: dict[str, Any] = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 2e-4, "betas": (0.5, 0.99)}


def official_lr_lambda(n_constant: int, n_decay: int) -> Callable[[int], float]:
    """The official policy, stepped once per epoch: multiplier 1 for the first ``n_constant - 1`` epochs, then
    ``1 - (e + 1 - n_constant) / (n_decay + 1)`` for the 1-based epoch e, reaching 0 after ``n_constant + n_decay``
    epochs (50 + 50 in the paper configuration: 1 - (e - 49) / 51)."""
    if n_constant < 1 or n_decay < 0:
        raise ValueError(f"need lr_constant_epochs >= 1 and lr_decay_epochs >= 0, got {n_constant}, {n_decay}")

    def multiplier(epoch_index: int) -> float:  # 0-based epochs completed
        return max(0.0, 1.0 - max(0, epoch_index + 2 - n_constant) / float(n_decay + 1))

    return multiplier


def uses_geometry(network: nn.Module) -> bool:
    """Whether ``network`` takes the views' projection matrices as ``proj_xray1`` / ``proj_xray2``."""
    return bool(getattr(network, "uses_geometry", False))


def geometry_of(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The batch's projection matrices by keyword (empty when the batch has none)."""
    return {key: batch[key] for key in PROJECTION_KEYS if key in batch}


def _build(spec: nn.Module | Mapping[str, Any] | DictConfig, role: str) -> nn.Module:
    if isinstance(spec, nn.Module):
        return spec
    return build_from_config(spec, role, role)


def _plain(spec: Any) -> Any:
    """Configs as plain containers for save_hyperparameters (modules are kept out)."""
    if isinstance(spec, DictConfig):
        return OmegaConf.to_container(spec, resolve=True)
    return spec


class X2CTGANModule(L.LightningModule):
    """X2CT-GAN training with manual optimization of generator and discriminator.

    Args:
        generator, discriminator: ``nn.Module`` or a Hydra config (``_target_``) that builds one.
        optimizer_g, optimizer_d: Hydra ``_partial_`` optimizer configs (default Adam 2e-4, betas (0.5, 0.99)).
        loss: :class:`LossWeights` fields (adversarial 0.1, reconstruction 10, projection 10/3, kind "mse").
        lr_constant_epochs, lr_decay_epochs: the official learning-rate policy (constant, then linear to 0).
        gradient_clip_norm: clip each network's gradient norm before its step (None: no clipping).
        init_std: N(0, std) initialization of conv/linear weights (None keeps the networks' own init).
        on_nonfinite: "raise" stops with an error naming the step and loss term; "skip" drops that step.
        val_ssim: compute 3D SSIM in validation (about 1 s per 128^3 volume on a CPU).
        point_sampling: :class:`PointSampling` fields; with ``points > 0`` each generator step evaluates only that
            many sampled voxels per case (a generator with ``predict_points``, e.g. the ray-implicit one) and
            trains on the voxel terms (reconstruction, bone); the whole-volume terms must then be 0.
    """

    def __init__(
        self,
        generator: nn.Module | Mapping[str, Any],
        discriminator: nn.Module | Mapping[str, Any],
        optimizer_g: Mapping[str, Any] | None = None,
        optimizer_d: Mapping[str, Any] | None = None,
        loss: Mapping[str, Any] | LossWeights | None = None,
        lr_constant_epochs: int = 50,
        lr_decay_epochs: int = 50,
        gradient_clip_norm: float | None = None,
        init_std: float | None = 0.02,
        on_nonfinite: str = "raise",
        val_ssim: bool = True,
        point_sampling: Mapping[str, Any] | PointSampling | None = None,
    ) -> None:
        super().__init__()
        if on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_POLICIES}, got {on_nonfinite!r}")
        if gradient_clip_norm is not None and gradient_clip_norm <= 0:
            raise ValueError(f"gradient_clip_norm must be positive or None, got {gradient_clip_norm}")
        self.automatic_optimization = False
        modules = [
            name for name, v in (("generator", generator), ("discriminator", discriminator)) if isinstance(v, nn.Module)
        ]
        self.save_hyperparameters(ignore=modules)
        for key in ("generator", "discriminator", "optimizer_g", "optimizer_d", "loss", "point_sampling"):
            if key in self.hparams:
                self.hparams[key] = _plain(self.hparams[key])
        self.generator = _build(generator, GENERATOR)
        self.discriminator = _build(discriminator, DISCRIMINATOR)
        if init_std is not None:
            init_weights(self.generator, std=init_std)
            init_weights(self.discriminator, std=init_std)
        if isinstance(loss, LossWeights):
            self.loss_weights = loss
        else:
            self.loss_weights = LossWeights(**dict(loss or {}))
        self.optimizer_specs = (  # checked now, so that a refused optimizer fails at load time, not at fit
            dict(check_config(optimizer_g or DEFAULT_ADAM, OPTIMIZER, "optimizer_g")),
            dict(check_config(optimizer_d or DEFAULT_ADAM, OPTIMIZER, "optimizer_d")),
        )
        self.point_sampling = (
            point_sampling if isinstance(point_sampling, PointSampling) else PointSampling(**dict(point_sampling or {}))
        )
        if self.point_sampling.enabled:
            self._check_point_training()
        self.eval_metrics = ReconstructionMetrics(ssim=val_ssim)
        self.skipped_steps = 0

    def _check_point_training(self) -> None:
        """Point-sampled training needs a generator that predicts points and no whole-volume loss term."""
        if not callable(getattr(self.generator, "predict_points", None)):
            raise ValueError(
                f"model.point_sampling.points > 0 needs a generator that predicts sampled points "
                f"(model/generator=ray_implicit); {type(self.generator).__name__} does not"
            )
        whole_volume = {
            name: getattr(self.loss_weights, name)
            for name in ("adversarial", "projection", "reprojection")
            if getattr(self.loss_weights, name) > 0
        }
        if whole_volume:
            raise ValueError(
                f"point-sampled training (model.point_sampling.points > 0) has no whole volume for the loss terms "
                f"{whole_volume}: set model.loss.<term>=0 for each, or model.point_sampling.points=0"
            )

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | PathLike | IO,
        map_location: Any = None,
        hparams_file: str | PathLike | None = None,
        strict: bool | None = None,
        weights_only: bool = True,
        **kwargs: Any,
    ) -> X2CTGANModule:
        """Lightning's loader, reading the file with ``weights_only=True`` by default (no code from the file runs)
        and naming the file in the error when it holds pickled objects or a config off the allow-list."""
        name = checkpoint_path if isinstance(checkpoint_path, str | PathLike) else "checkpoint"
        try:
            return super().load_from_checkpoint(
                checkpoint_path, map_location, hparams_file, strict, weights_only=weights_only, **kwargs
            )
        except DisallowedTargetError as error:
            raise DisallowedTargetError(f"{name}: {error}") from error
        except pickle.UnpicklingError as error:
            refusal = describe_unpickling_refusal(name, error)
            if refusal is None:
                raise
            raise DisallowedTargetError(refusal) from error

    # ------------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        xray1: torch.Tensor,
        xray2: torch.Tensor,
        proj_xray1: torch.Tensor | None = None,
        proj_xray2: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted volume (N, 1, D, H, W), not clamped. The matrices (N, 3, 4) are required by a generator that
        uses the geometry and ignored by the others."""
        if not uses_geometry(self.generator):
            return self.generator(xray1, xray2)
        if proj_xray1 is None or proj_xray2 is None:
            raise ValueError(
                f"{type(self.generator).__name__} lifts along the true rays: pass proj_xray1 and proj_xray2 "
                "(the projection matrices every X2CTDataModule batch carries)"
            )
        return self.generator(xray1, xray2, proj_xray1, proj_xray2)

    @torch.no_grad()
    def reconstruct(
        self,
        xray1: torch.Tensor,
        xray2: torch.Tensor,
        proj_xray1: torch.Tensor | None = None,
        proj_xray2: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted volume clamped to [0, 1] (evaluation / export)."""
        return self(xray1, xray2, proj_xray1, proj_xray2).clamp(0.0, 1.0)

    def reconstruct_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """:meth:`reconstruct` of a data-module batch (uses its matrices when present)."""
        return self.reconstruct(batch["xray1"], batch["xray2"], **geometry_of(batch))

    def discriminate(self, volume: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        """Patch logits of ``volume`` conditioned on the batch's X-rays (and matrices, for ray conditioning)."""
        geometry = geometry_of(batch) if uses_geometry(self.discriminator) else {}
        return self.discriminator(volume, batch["xray1"], batch["xray2"], **geometry)

    # ------------------------------------------------------------------------------------------- optimizers
    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        opt_g = build_from_config(self.optimizer_specs[0], OPTIMIZER, "optimizer_g")(self.generator.parameters())
        opt_d = build_from_config(self.optimizer_specs[1], OPTIMIZER, "optimizer_d")(self.discriminator.parameters())
        policy = official_lr_lambda(self.hparams.lr_constant_epochs, self.hparams.lr_decay_epochs)
        schedulers = [
            {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, policy), "interval": "epoch", "name": f"lr_{n}"}
            for n, opt in (("g", opt_g), ("d", opt_d))
        ]
        return [opt_g, opt_d], schedulers

    @property
    def trains_discriminator(self) -> bool:
        """False with adversarial weight 0: the discriminator has no effect on G, so it is neither run nor stepped."""
        return self.loss_weights.adversarial > 0

    def on_train_epoch_end(self) -> None:
        scheduler_g, scheduler_d = self.lr_schedulers()
        scheduler_g.step()
        if self.trains_discriminator:  # D's optimizer never steps without the adversarial term
            scheduler_d.step()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.hparams.gradient_clip_norm is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.hparams.gradient_clip_norm, gradient_clip_algorithm="norm"
            )

    # --------------------------------------------------------------------------------------------- training
    def _finite_or_handle(self, terms: dict[str, torch.Tensor], network: str, batch: Mapping[str, Any]) -> bool:
        """True if every term is finite; otherwise raise (policy "raise") or return False (policy "skip").

        Under DDP the decision is shared so that every rank skips the same step."""
        bad = [name for name, value in terms.items() if not torch.isfinite(value).all()]
        any_bad = self.trainer.strategy.reduce_boolean_decision(bool(bad), all=False) if self._trainer else bool(bad)
        if not any_bad:
            return True
        where = f"epoch {self.current_epoch}, global step {self.global_step}, cases {list(batch.get('case_id', []))}"
        if self.hparams.on_nonfinite == "raise":
            values = {name: float(terms[name].detach().float().mean()) for name in bad} or {"(another rank)": math.nan}
            raise FloatingPointError(
                f"non-finite {network} loss {values} at {where}; lower the learning rate, enable "
                "model.gradient_clip_norm, or set model.on_nonfinite=skip"
            )
        self.skipped_steps += 1
        self.print(f"skipping the {network} step: non-finite loss terms {bad or '(another rank)'} at {where}")
        return False

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        if self.point_sampling.enabled:
            self._point_step(opt_g, batch)
            return
        real = batch["ct"]
        fake = self(batch["xray1"], batch["xray2"], **geometry_of(batch))
        adversarial = self.trains_discriminator

        with self.toggled_optimizer(opt_g):
            fake_logits = self.discriminate(fake, batch) if adversarial else None
            g_terms = generator_loss_terms(
                fake_logits, fake, real, self.loss_weights, list(geometry_of(batch).values())
            )
            opt_g.zero_grad(set_to_none=True)
            if self._finite_or_handle(g_terms, "generator", batch):
                self.manual_backward(g_terms["total"])
                opt_g.step()
        d_terms = self._discriminator_step(opt_d, real, fake, batch) if adversarial else {}
        self._log_training_terms(g_terms, d_terms, real.shape[0])

    def _point_step(self, opt_g: torch.optim.Optimizer, batch: Mapping[str, Any]) -> None:
        """One generator step on ``point_sampling.points`` sampled voxels per case."""
        real = batch["ct"]
        sampling = self.point_sampling
        indices = sample_voxel_indices(
            real,
            int(sampling.points),
            float(sampling.foreground_fraction),
            sampling.foreground_threshold(self.loss_weights.ct_window_hu),
        )
        points = voxel_centres(indices, tuple(real.shape[-3:])).to(real.dtype)
        predicted = self.generator.predict_points(points, batch["xray1"], batch["xray2"], **geometry_of(batch))
        g_terms = point_loss_terms(predicted, values_at(real, indices), self.loss_weights)
        opt_g.zero_grad(set_to_none=True)
        if self._finite_or_handle(g_terms, "generator", batch):
            self.manual_backward(g_terms["total"])
            opt_g.step()
        self._log_training_terms(g_terms, {}, real.shape[0])

    def _discriminator_step(
        self, opt_d: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor, batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        """One LSGAN step of D on ``real`` and the detached ``fake``; returns its weighted terms."""
        with self.toggled_optimizer(opt_d):
            d_terms = discriminator_loss_terms(
                self.discriminate(real, batch),
                self.discriminate(fake.detach(), batch),
                self.loss_weights,
            )
            opt_d.zero_grad(set_to_none=True)
            if self._finite_or_handle(d_terms, "discriminator", batch):
                self.manual_backward(d_terms["total"])
                opt_d.step()
        return d_terms

    def _log_training_terms(
        self, g_terms: dict[str, torch.Tensor], d_terms: dict[str, torch.Tensor], batch_size: int
    ) -> None:
        logged = {f"train/g_{k}": v.detach() for k, v in g_terms.items() if k != "total"}
        logged |= {f"train/d_{k}": v.detach() for k, v in d_terms.items()}
        self.log_dict(logged, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=True)
        self.log(
            "train/g_total",
            g_terms["total"].detach(),
            prog_bar=True,
            on_step=True,
            on_epoch=True,
            batch_size=batch_size,
            sync_dist=True,
        )
        self.log(
            "train/skipped_steps",
            float(self.skipped_steps),
            on_step=False,
            on_epoch=True,
            reduce_fx="max",
            batch_size=batch_size,
            sync_dist=True,
        )

    # ------------------------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        fake = self.reconstruct_batch(batch)
        self.eval_metrics.update(batch["ct"], fake)
        return {"fake": fake}

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluate(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluate(batch)

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    def _log_eval_metrics(self, stage: str) -> None:
        for name, value in self.eval_metrics.compute().items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "PSNR-3D")
        self.eval_metrics.reset()

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        return self.reconstruct_batch(batch)
