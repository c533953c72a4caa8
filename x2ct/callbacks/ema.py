"""An exponential moving average (EMA) of the generator's weights, used for validation, testing and inference.

After every training batch each floating-point parameter of ``pl_module.generator`` is averaged as
``ema <- decay * ema + (1 - decay) * param`` (starting from the weights at the start of fitting), so after k batches
``ema_k = decay**k * p_0 + (1 - decay) * sum_{i=1..k} decay**(k - i) * p_i``. Buffers (e.g. normalization
statistics) and non-float tensors are copied from the live generator, not averaged. The discriminator is untouched.

Checkpoints carry the EMA under the top-level key ``"generator_ema"``: a plain ``{name: tensor}`` state dict with
exactly the keys of ``module.generator.state_dict()`` (CPU tensors). Resuming restores it; ``x2ct-eval`` and
``x2ct-predict`` (:func:`x2ct.inference.checkpoint.load_x2ct_checkpoint`) load it in place of the live generator
weights. Validation during fitting and ``trainer.test`` run with the EMA weights swapped in, and the live weights
are put back afterwards (the checkpoint's ``state_dict`` always holds the live, trained weights).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

log = logging.getLogger(__name__)

GENERATOR_EMA_KEY = "generator_ema"  # top-level checkpoint key of the EMA state dict
GENERATOR_PREFIX = "generator."  # the generator's keys in the LightningModule's state_dict
DEFAULT_DECAY = 0.999


def ema_state_dict(generator: nn.Module, averaged: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``generator.state_dict()`` with the averaged parameters in place of the live ones (CPU copies)."""
    return {
        name: averaged.get(name, value).detach().to("cpu", copy=True) for name, value in generator.state_dict().items()
    }


class GeneratorEMA(L.Callback):
    """Keeps the EMA of ``pl_module.generator``'s floating-point parameters (see the module docstring).

    Args:
        decay: weight of the running average per training batch, in [0, 1) (0.999 ~ the last 1000 batches).
    """

    def __init__(self, decay: float = DEFAULT_DECAY) -> None:
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"callbacks.ema.decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.averaged: dict[str, torch.Tensor] = {}  # parameter name -> EMA (on the parameter's device)
        self._loaded: dict[str, torch.Tensor] | None = None  # from a checkpoint being resumed
        self._live: dict[str, torch.Tensor] | None = None  # live weights while the EMA is swapped in

    # ------------------------------------------------------------------------------------------- averaging

    @staticmethod
    def _averaged_parameters(generator: nn.Module) -> dict[str, nn.Parameter]:
        return {name: p for name, p in generator.named_parameters() if p.dtype.is_floating_point}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start from the resumed checkpoint's EMA when there is one, else from the current weights."""
        parameters = self._averaged_parameters(pl_module.generator)
        source = self._loaded if self._loaded is not None else {n: p.detach() for n, p in parameters.items()}
        missing = sorted(set(parameters) - set(source))
        if missing:
            raise ValueError(f"the checkpoint's {GENERATOR_EMA_KEY} lacks generator parameters {missing[:5]}")
        self.averaged = {n: source[n].detach().to(p.device, p.dtype, copy=True) for n, p in parameters.items()}
        self._loaded = None

    @torch.no_grad()
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        for name, parameter in self._averaged_parameters(pl_module.generator).items():
            self.averaged[name].lerp_(parameter.detach(), 1.0 - self.decay)

    # --------------------------------------------------------------------------------- swapping the weights

    @torch.no_grad()
    def _swap_in(self, generator: nn.Module, averaged: dict[str, torch.Tensor]) -> None:
        if self._live is not None or not averaged:
            return
        parameters = self._averaged_parameters(generator)
        self._live = {name: p.detach().clone() for name, p in parameters.items()}
        for name, parameter in parameters.items():
            parameter.copy_(averaged[name])

    @torch.no_grad()
    def _swap_out(self, generator: nn.Module) -> None:
        if self._live is None:
            return
        for name, parameter in self._averaged_parameters(generator).items():
            parameter.copy_(self._live[name])
        self._live = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._swap_in(pl_module.generator, self.averaged)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_out(pl_module.generator)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Test with the EMA of the checkpoint being tested (``trainer.test(ckpt_path=...)``), else the current one."""
        averaged = self.averaged
        if trainer.ckpt_path:
            checkpoint = torch.load(Path(trainer.ckpt_path), map_location="cpu", weights_only=True)
            averaged = dict(checkpoint.get(GENERATOR_EMA_KEY) or {})
            if not averaged:
                log.warning("%s has no %s: testing its live generator weights", trainer.ckpt_path, GENERATOR_EMA_KEY)
        self._swap_in(pl_module.generator, averaged)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_out(pl_module.generator)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._swap_out(pl_module.generator)

    # ----------------------------------------------------------------------------------------- checkpoints

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Add ``checkpoint["generator_ema"]``; keep the live weights in ``state_dict`` even mid-swap."""
        if not self.averaged:
            return
        checkpoint[GENERATOR_EMA_KEY] = ema_state_dict(pl_module.generator, self.averaged)
        if self._live is not None:
            for name, value in self._live.items():
                checkpoint["state_dict"][GENERATOR_PREFIX + name] = value.detach().to("cpu", copy=True)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Keep the EMA of the checkpoint being resumed (a checkpoint without one starts from its weights)."""
        saved = checkpoint.get(GENERATOR_EMA_KEY)
        self._loaded = dict(saved) if saved else None
        if not saved:
            log.info("the checkpoint has no %s: the EMA starts from its generator weights", GENERATOR_EMA_KEY)
